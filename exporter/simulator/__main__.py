"""``python -m exporter.simulator``: serve a generated organisation (see ``--help``)."""

from exporter.simulator.server import main

raise SystemExit(main())
