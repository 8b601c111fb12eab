"""``python -m exporter.simulator``: serve a generated organisation (see ``--help``)."""

from exporter.simulator.cli import main

raise SystemExit(main())
