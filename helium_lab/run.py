"""Entry point: `python -m helium_lab.run +experiment=<name> [key=value ...]`.

Only starts the command line: the wiring (Hydra, run folders, tasks) lives above the
planner, in `experiments.cli`. This shim keeps the command users know; it is the one
module of `helium_lab/` that imports a layer above the planner (tests/test_layering.py).
"""

from experiments.cli import cli

if __name__ == "__main__":
    cli()
