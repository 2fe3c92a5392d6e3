"""Pure: latency percentiles, whether a step was sustained, and the saturation point."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# A step is sustained when the pipeline keeps up: the backlog grows by at most this share of what was offered in the
# measuring window, and the rows reaching HBase are at least this share of the offered rate.
LAG_GROWTH_MAX = 0.10
DELIVERED_MIN = 0.90


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q * len(ordered)))
    return ordered[rank - 1]


def latency_summary(values: Sequence[float]) -> dict[str, float]:
    """p50/p95/p99/max and the count of samples (seconds in, milliseconds out)."""
    return {"n": float(len(values)), "p50_ms": percentile(values, 0.50) * 1000,
            "p95_ms": percentile(values, 0.95) * 1000, "p99_ms": percentile(values, 0.99) * 1000,
            "max_ms": (max(values) * 1000) if values else math.nan}


@dataclass(frozen=True)
class Window:
    """What one step's measuring window saw."""

    offered: float  # readings/s the plan offered
    seconds: float
    lag_start: int  # readings + raw records not yet processed, summed over the pipeline's groups
    lag_end: int
    delivered: float  # raw rows/s written to HBase

    @property
    def lag_growth(self) -> float:
        """Backlog growth as a share of the readings offered in the window."""
        return (self.lag_end - self.lag_start) / max(1.0, self.offered * self.seconds)

    @property
    def sustained(self) -> bool:
        return self.lag_growth <= LAG_GROWTH_MAX and self.delivered >= DELIVERED_MIN * self.offered


def saturation(windows: Sequence[Window]) -> float:
    """The highest offered rate sustained, counting steps in order up to the first that was not (0 if none was)."""
    best = 0.0
    for window in windows:
        if not window.sustained:
            break
        best = max(best, window.offered)
    return best


def rate(count: float, seconds: float) -> float:
    return count / seconds if seconds > 0 else math.nan
