"""Pure: the open-loop load plan. Reading i is due at a wall time computed from the plan alone, so the producer and
every observer agree on it without exchanging a table (and a producer that falls behind shows up as latency: no
coordinated omission).

Devices = sites x sensors (the seven 15-minute sensors). Reading i is device ``i % devices`` at simulated step
``seq = i // devices``: event time ``base + seq * 15 min``, so 96 steps make one simulated day (UTC days: the bench runs
every component with IOTPIPE_SITE_TZ=UTC).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from iotcommon.sensors import SENSORS

SENSOR_NAMES = tuple(s.name for s in SENSORS.values() if s.every_15_min)
STEP_MS = 15 * 60 * 1000
STEPS_PER_DAY = 96
VALUES = {"TH1": 21.5, "TH2": 45.0}  # plausible values; the other 15-minute sensors take 1.0


@dataclass(frozen=True)
class Step:
    rate: int  # offered readings/s
    start_index: int  # first reading of this step
    start_s: float  # wall-clock offset of its first reading from the plan's start
    hold_s: float

    @property
    def end_index(self) -> int:
        return self.start_index + int(self.rate * self.hold_s)

    @property
    def end_s(self) -> float:
        return self.start_s + self.hold_s


@dataclass(frozen=True)
class Plan:
    sites: int
    base: datetime  # event time of seq 0 (a UTC midnight)
    steps: tuple[Step, ...]  # every step the producer runs, the warm-up first
    warmup: bool = False  # steps[0] is a warm-up: run like the others, never judged or reported

    @property
    def measured(self) -> tuple[Step, ...]:
        return self.steps[1:] if self.warmup else self.steps

    @property
    def devices(self) -> int:
        return self.sites * len(SENSOR_NAMES)

    @property
    def total(self) -> int:
        return self.steps[-1].end_index if self.steps else 0

    def reading(self, i: int) -> tuple[str, str, int, int]:
        """(site, sensor, seq, event time ms) of reading i."""
        seq, device = divmod(i, self.devices)
        site, sensor = divmod(device, len(SENSOR_NAMES))
        return site_name(site), SENSOR_NAMES[sensor], seq, self.base_ms + seq * STEP_MS

    @property
    def base_ms(self) -> int:
        return int(self.base.timestamp() * 1000)

    def index_of(self, site: str, sensor: str, seq: int) -> int:
        return seq * self.devices + int(site[4:]) * len(SENSOR_NAMES) + SENSOR_NAMES.index(sensor)

    def step_of(self, i: int) -> Step:
        starts = [s.start_index for s in self.steps]
        return self.steps[max(0, bisect.bisect_right(starts, i) - 1)]

    def due_s(self, i: int) -> float:
        """Offset from the plan's start at which reading i is due."""
        step = self.step_of(i)
        return step.start_s + (i - step.start_index) / step.rate

    def first_of_day(self, day: date) -> int:
        """Index of the first reading dated ``day`` (its 00:00 step, first device)."""
        return (day - self.base.date()).days * STEPS_PER_DAY * self.devices

    def day_of(self, i: int) -> date:
        return self.base.date() + timedelta(days=(i // self.devices) // STEPS_PER_DAY)


def site_name(number: int) -> str:
    return f"site{number:04d}"


def make_plan(rates: list[int], hold_s: float, sites: int, now: datetime, gap_s: float = 0.0,
              warmup_s: float = 0.0, warmup_rate: int = 0) -> Plan:
    """Steps back to back (``gap_s`` between them), after a warm-up step of ``warmup_s`` seconds at ``warmup_rate``
    (0: the first step's rate) when ``warmup_s`` > 0; event time starts at the UTC midnight 3 years before ``now`` so
    even a long run stays in the past (the job refuses readings stamped ahead of their Kafka time)."""
    base = datetime.combine(now.date() - timedelta(days=3 * 365), datetime.min.time(), UTC)
    holds = [(warmup_rate or rates[0], warmup_s)] if warmup_s > 0 and rates else []
    holds += [(rate, hold_s) for rate in rates]
    steps: list[Step] = []
    index, at = 0, 0.0
    for rate, hold in holds:
        step = Step(rate, index, at, hold)
        steps.append(step)
        index, at = step.end_index, step.end_s + gap_s
    return Plan(sites, base, tuple(steps), warmup=len(holds) > len(rates))


def value_of(sensor: str) -> float:
    return VALUES.get(sensor, 1.0)
