"""`python -m exporter` does what the `northflank-exporter` script does."""

from exporter.cli import main

raise SystemExit(main())
