"""What every scheduling policy is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from helium_lab.cost import TokenStepCost
from helium_lab.plan import Plan
from helium_lab.scheduling.refine import DEFAULT_MAX_EVALUATIONS
from helium_lab.tokenizer import Tokenizer

PartitionMode = Literal["even", "lpt"]
PARTITION_MODES: tuple[str, ...] = get_args(PartitionMode)


@dataclass(frozen=True)
class PlanningContext:
    """The optimized plan, the tokenizer that renders its prompts, the token-step cost
    model (one KV capacity per worker), a seed for randomized policies, the work bound
    of Helium's call-level refinement (`planner.refine_max_evaluations`), and how
    PartitionWorkflow splits the batch (`planner.partition`: `even`, the reference's
    contiguous slices, or `lpt`, by estimated per-query usage; scheduling/partition.py)."""

    plan: Plan
    tokenizer: Tokenizer
    cost: TokenStepCost
    seed: int = 0
    refine_max_evaluations: int = DEFAULT_MAX_EVALUATIONS
    partition: PartitionMode = "even"

    def __post_init__(self) -> None:
        if self.partition not in PARTITION_MODES:
            raise ValueError(f"planner.partition: unknown {self.partition!r}; known: "
                             f"{list(PARTITION_MODES)}")

    @property
    def num_workers(self) -> int:
        return len(self.cost.capacities)
