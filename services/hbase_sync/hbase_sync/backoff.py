"""Retry delays: exponential from ``initial_s`` up to ``max_s``, with proportional jitter. Pure (rng injected)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    initial_s: float
    max_s: float
    factor: float = 2.0
    jitter: float = 0.2  # +-20 %, so several workers do not probe a recovering HBase in lockstep
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def delay(self, attempt: int) -> float:
        """Delay before retry number ``attempt`` (1 = first retry); never above ``max_s``."""
        base = min(self.max_s, self.initial_s * self.factor ** min(max(0, attempt - 1), 64))
        spread = base * self.jitter
        return max(0.0, min(self.max_s, base + self.rng.uniform(-spread, spread)))
