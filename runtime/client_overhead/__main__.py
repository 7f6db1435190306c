"""``python -m runtime.client_overhead``: see `runtime.client_overhead.cli.main` (also the
mock server's own process, ``--serve PID``)."""

from runtime.client_overhead.cli import main

raise SystemExit(main())
