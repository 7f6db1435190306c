"""Exact solver of Eq. 5 (PAPER.md §4.1) for small call-level instances.

It gives the reference optimum σ* of the optimality study (§4.5, Table 5; Eq. 6's gap).
Two exact engines share one model of Eq. 5 and a heuristic incumbent:

* `instance`: `PreparedInstance`, the call instance tabulated for the searches (usages and
  delays per worker class, dependency closure, heads and tails, query symmetries); it
  evaluates schedules with `tokensteps.earliest_times`, the one definition of T(σ).
* `incumbent`: list schedules improved by local search, the upper bound both engines
  start from, and its canonical form under the MILP's symmetry breaking.
* `milp`: the MILP (HiGHS through `highspy`, else `scipy.optimize.milp`), any number of
  workers.
* `branch_and_bound`: depth-first branch and bound, one worker only; on the Table 5 sizes
  far faster than the MILP.
* `solve`: `solve_exact`, which runs them under one time limit, and its `MilpResult`. The
  reported makespan is always T(σ) of the returned orders re-evaluated with
  `tokensteps.evaluate_orders`.
"""

from helium_lab.scheduling.exact.solve import MilpResult, solve_exact

__all__ = ["MilpResult", "solve_exact"]
