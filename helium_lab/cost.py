"""The token-step cost model of PAPER.md §4.1 (Eqs. 1–5).

Time is counted in *token steps*. A call's usage is the KV memory it occupies summed over
its generation steps: its newly prefilled tokens stay resident for `len_out` steps, and its
decode tokens accumulate (Eqs. 2–3). A call that depends on another may start only
`d = α·M·len_out` token steps after its predecessor completes (Eq. 4), which pushes a
scheduler to interleave independent calls, as a batching engine would.

`alpha="unit"` (α = 1) gives the magnitudes of the paper's Table 5 (10^6–10^7 token steps);
`alpha="inverse_capacity"` (α = 1/M) is the paper's normalization for mixed workers. The
ratio of usage to delay, and so every schedule comparison, is the same under both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from helium_lab.errors import ConfigError


@dataclass(frozen=True)
class TokenStepCost:
    """Per-worker KV capacities M_i (tokens) and the α normalization."""

    capacities: tuple[int, ...] = (8192,)
    alpha: Literal["unit", "inverse_capacity"] = "unit"

    def __post_init__(self) -> None:
        if not self.capacities or min(self.capacities) <= 0:
            raise ConfigError(f"cost.capacities must be positive token counts, got "
                              f"{self.capacities}")
        if self.alpha not in ("unit", "inverse_capacity"):
            raise ConfigError(f"cost.alpha must be 'unit' or 'inverse_capacity', got "
                              f"{self.alpha!r}")

    @staticmethod
    def uniform(workers: int, capacity: int = 8192,
                alpha: Literal["unit", "inverse_capacity"] = "unit") -> TokenStepCost:
        return TokenStepCost((capacity,) * workers, alpha)

    def a(self, worker: int) -> float:
        return 1.0 if self.alpha == "unit" else 1.0 / self.capacities[worker]

    def usage(self, prefill: float, len_out: float, worker: int = 0) -> float:
        """Eq. 3: α(len_out · u_p + ½ len_out (len_out + 1)), with u_p from Eq. 1."""
        return self.a(worker) * (len_out * prefill + 0.5 * len_out * (len_out + 1))

    def delay(self, len_out: float, worker: int = 0) -> float:
        """Eq. 4: the precedence delay after a call producing `len_out` tokens."""
        return self.a(worker) * self.capacities[worker] * len_out
