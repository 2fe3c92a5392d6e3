"""The simulated clock: a grid of 15-minute steps in UTC, and what each step means in the sites' local time.

Step ``k`` is the instant ``start + k * 15 min``. Fifteen-minute sensors emit at every step ``k >= 1``, stamped with
the step's instant: the reading describes the quarter that ends there, so by the day rule (``iotcommon.days``) a local
day gets the readings 00:15 .. 24:00, i.e. 96 of them, or 92 / 100 on the days DST starts / ends (the grid is in UTC,
so the local clock's jumps need no special case). Cumulative meters emit at the steps that fall on a local midnight.
Everything here is pure: no I/O, no wall clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import numpy.typing as npt

from iotcommon import days

STEP = timedelta(minutes=15)
STEP_S = 900
LOW_HOUR = 6  # the daily low is reached at 06:00 local time
PEAK_HOUR = 16  # the daily peak at 16:00


@dataclass(frozen=True)
class StepFeatures:
    """Per-step facts shared by every site, for steps ``first .. first + n - 1`` (arrays of length n)."""

    first: int
    epoch_s: npt.NDArray[np.int64]
    quarter: npt.NDArray[np.int64]  # epoch_s // 900: index of the random streams of 15-minute sensors
    ts: list[str]  # iso_z of each step
    hour: npt.NDArray[np.float64]  # local decimal hour at the start of the quarter the step closes (0.0 .. 23.75)
    day: npt.NDArray[np.int64]  # ordinal of the local day the step's readings belong to (day rule)
    midnight: npt.NDArray[np.bool_]  # the step is a local midnight: it closes ``day``
    day_hours: npt.NDArray[np.float64]  # length of ``day`` in hours (23, 24, 25)
    # temperature curve: T = A + (B - A) * (1 - cos(pi * frac)) / 2, A/B = low or peak of a given day
    from_day: npt.NDArray[np.int64]
    from_peak: npt.NDArray[np.bool_]
    to_day: npt.NDArray[np.int64]
    to_peak: npt.NDArray[np.bool_]
    frac: npt.NDArray[np.float64]
    month: npt.NDArray[np.int64] = field(repr=False)  # month (1..12) of each step's local instant

    def __len__(self) -> int:
        return len(self.ts)


@dataclass(frozen=True)
class Timeline:
    start: datetime  # aware, on a quarter-hour boundary
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.start.tzinfo is None:
            msg = "the start instant must be time-zone aware"
            raise ValueError(msg)
        if int(self.start.timestamp()) % STEP_S or self.start.microsecond:
            msg = f"the start instant {self.start.isoformat()} is not on a quarter hour (:00, :15, :30, :45 UTC)"
            raise ValueError(msg)

    @property
    def start_s(self) -> int:
        return int(self.start.timestamp())

    def features(self, first: int, n: int) -> StepFeatures:
        tz = self.tz
        epoch = self.start_s + STEP_S * np.arange(first, first + n, dtype=np.int64)
        ts: list[str] = []
        hour = np.empty(n)
        day = np.empty(n, dtype=np.int64)
        midnight = np.zeros(n, dtype=np.bool_)
        day_hours = np.empty(n)
        from_day = np.empty(n, dtype=np.int64)
        from_peak = np.zeros(n, dtype=np.bool_)
        to_day = np.empty(n, dtype=np.int64)
        to_peak = np.zeros(n, dtype=np.bool_)
        frac = np.empty(n)
        month = np.empty(n, dtype=np.int64)
        for i, e in enumerate(epoch.tolist()):
            t = datetime.fromtimestamp(e, UTC)
            ts.append(days.iso_z(t))
            local = t.astimezone(tz)
            month[i] = local.month
            quarter_start = (t - STEP).astimezone(tz)
            hour[i] = quarter_start.hour + quarter_start.minute / 60
            d = days.day_of(t, tz)
            day[i] = d.toordinal()
            midnight[i] = _day_end(d, tz) == t
            day_hours[i] = _day_hours(d, tz)
            # temperature: which segment of the daily curve is t on?
            today = local.date()
            low_at, peak_at = _at(today, LOW_HOUR, tz), _at(today, PEAK_HOUR, tz)
            if t < low_at:  # falling from yesterday's peak to today's low
                a, b = _at(today - timedelta(days=1), PEAK_HOUR, tz), low_at
                from_day[i], from_peak[i], to_day[i] = today.toordinal() - 1, True, today.toordinal()
            elif t < peak_at:  # rising from today's low to today's peak
                a, b = low_at, peak_at
                from_day[i], to_day[i], to_peak[i] = today.toordinal(), today.toordinal(), True
            else:  # falling from today's peak to tomorrow's low
                a, b = peak_at, _at(today + timedelta(days=1), LOW_HOUR, tz)
                from_day[i], from_peak[i], to_day[i] = today.toordinal(), True, today.toordinal() + 1
            frac[i] = (t - a) / (b - a)
        return StepFeatures(first, epoch, epoch // STEP_S, ts, hour, day, midnight, day_hours,
                            from_day, from_peak, to_day, to_peak, frac, month)


@lru_cache(maxsize=4096)
def _day_end(d: date, tz: ZoneInfo) -> datetime:
    return days.day_end(d, tz)


@lru_cache(maxsize=4096)
def _day_hours(d: date, tz: ZoneInfo) -> float:
    return days.day_length(d, tz).total_seconds() / 3600


@lru_cache(maxsize=8192)
def _at(d: date, hour: int, tz: ZoneInfo) -> datetime:
    return datetime.combine(d, time(hour), tz).astimezone(UTC)


def day_bounds(ordinal: int, tz: ZoneInfo) -> tuple[int, int]:
    """(exclusive start, inclusive end) of a local day in epoch seconds."""
    d = date.fromordinal(ordinal)
    return int(days.day_start(d, tz).timestamp()), int(_day_end(d, tz).timestamp())
