"""Regenerate the paper's evaluation artifacts (PAPER.md §8) from simulator runs.

`experiments.paper` says which runs make each artifact; `paper_figs.sweep` executes the
missing ones through a Hydra multirun; `paper_figs.store` decides what can be reused;
`paper_figs.artifacts` draws (one module per artifact, a registry of drawers);
`paper_figs.report` writes REPORT.md. See README.md here.
"""
