"""What every scheduling policy is given."""

from __future__ import annotations

from dataclasses import dataclass

from helium_lab.cost import TokenStepCost
from helium_lab.plan import Plan
from helium_lab.tokenizer import Tokenizer


@dataclass(frozen=True)
class PlanningContext:
    """The optimized plan, the tokenizer that renders its prompts, the token-step cost
    model (one KV capacity per worker), and a seed for randomized policies."""

    plan: Plan
    tokenizer: Tokenizer
    cost: TokenStepCost
    seed: int = 0

    @property
    def num_workers(self) -> int:
        return len(self.cost.capacities)
