"""``python -m msgbus``: the command line interface."""

from msgbus.cli.main import main

raise SystemExit(main())
