"""``python -m runtime.server_overhead``: see `runtime.server_overhead.cli.main`."""

from runtime.server_overhead.cli import main

raise SystemExit(main())
