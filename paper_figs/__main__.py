"""`python -m paper_figs [ARTIFACT ...]` (see paper_figs/README.md)."""

from __future__ import annotations

import sys

from paper_figs.cli import main

if __name__ == "__main__":
    sys.exit(main())
