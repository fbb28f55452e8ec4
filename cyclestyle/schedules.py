"""Learning-rate multipliers, stepped by hand once per epoch or per training iteration.

They are callable objects (not lambdas) so `LambdaLR.state_dict()` keeps their settings.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("linear", "cosine", "step", "constant")
UNITS = ("epoch", "iteration")


@dataclass
class LRMultiplier:
    """Multiplier for step t (t = finished epochs or iterations).

    linear:   1 for `constant` steps, then linear to 0 over `decay` steps (reference CycleGAN).
    cosine:   1 for `constant` steps, then half a cosine to 0 over `decay` steps.
    step:     multiplied by `gamma` every `step_size` steps.
    constant: always 1.
    """

    name: str = "linear"
    constant: int = 100
    decay: int = 100
    step_size: int = 50
    gamma: float = 0.1

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"model.scheduler.name={self.name!r} is not known; choose one of {', '.join(SCHEDULES)}")
        for field in ("constant", "decay", "step_size"):
            if getattr(self, field) < 0 or (field == "step_size" and self.step_size == 0):
                raise ValueError(f"model.scheduler.{field} must be positive, got {getattr(self, field)}")

    def __call__(self, t: int) -> float:
        if self.name == "constant":
            return 1.0
        if self.name == "step":
            return self.gamma ** (t // self.step_size)
        progress = min(max(t - self.constant, 0) / max(self.decay, 1), 1.0)
        if self.name == "linear":
            return 1.0 - progress
        return 0.5 * (1.0 + math.cos(math.pi * progress))
