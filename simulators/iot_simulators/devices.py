"""The device models of one building, vectorised: every function returns an array of shape (steps, sites).

Pure functions of the step features (``timeline.StepFeatures``) and the sites' random streams (``rng``); no state.
The models follow the original system's device layer (docs: seed-system-spec §1.2-1.3) with its defects fixed:
temperatures stay in 12-35 °C (the daily extremes are limited so the curve never flattens at the bounds), water is
never negative, the water curve's mean offset is drawn per day as intended, motion events fall strictly inside their
day, and cumulative meters grow by a day-length-proportional amount (2600 Wh/h, 110 l/day) from a base value.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt

from iot_simulators.rng import F64, U64, Stream, stream_states, uniform, uniform_between
from iot_simulators.timeline import StepFeatures

I64 = npt.NDArray[np.int64]

# Ranges (also asserted by the tests).
TEMP_MIN, TEMP_MAX = 12.0, 35.0
MIAC_MAX = {"MiAC1": 150.0, "MiAC2": 200.0}
# Athens monthly mean temperatures, January .. December.
MONTHLY_MEAN = np.array([14, 15, 17, 19, 24, 28, 30.5, 30, 26, 21, 16, 13], dtype=np.float64)
TEMP_NOISE = 0.5  # per-reading noise U(-0.5, 0.5)
# Daily extremes are limited so that extreme + noise stays inside [TEMP_MIN, TEMP_MAX].
LOW_FLOOR, PEAK_CEIL = TEMP_MIN + TEMP_NOISE, TEMP_MAX - TEMP_NOISE
MIAC1_FULL_HOURS = (19, 24)  # "light bulb": full power from 19:00 to midnight
MIAC2_FULL_HOURS = (13, 16)  # "kitchen": full power from 13:00 to 16:00
ETOT_BASE, ETOT_PER_HOUR, ETOT_JITTER = 1500.8, 2600.0, 1000.0
WTOT_BASE, WTOT_PER_DAY, WTOT_JITTER = 1000.0, 110.0, 10.0
MOV_MIN_EVENTS, MOV_MAX_EVENTS = 4, 5
MOV_SLOTS = 8  # index stride of MOV_TIME per day


@dataclass(frozen=True)
class SiteStreams:
    """The random streams of a set of sites: one uint64 state per (stream, site)."""

    states: dict[Stream, U64]

    @classmethod
    def of(cls, seed: int, site_numbers: list[int]) -> SiteStreams:
        return cls({s: stream_states(seed, site_numbers, s) for s in Stream})

    def __getitem__(self, stream: Stream) -> U64:
        return self.states[stream]


def _pdf(x: F64, mu: float, sigma: float) -> F64:
    out: F64 = np.exp(-0.5 * ((x - mu) / sigma) ** 2) / (sigma * np.sqrt(2 * np.pi))
    return out


def temperature_extremes(streams: SiteStreams, day_ordinals: I64) -> tuple[F64, F64]:
    """(low, peak) per (day, site): monthly mean ± U(1), then mean - U(2,7) / mean + U(2,7), kept inside the range."""
    months = np.array([date.fromordinal(int(d)).month for d in day_ordinals], dtype=np.int64)
    mean = MONTHLY_MEAN[months - 1][:, None] + uniform_between(streams[Stream.TEMP_MEAN], day_ordinals, -1.0, 1.0)
    low = np.maximum(mean - uniform_between(streams[Stream.TEMP_LOW], day_ordinals, 2.0, 7.0), LOW_FLOOR)
    peak = np.minimum(mean + uniform_between(streams[Stream.TEMP_PEAK], day_ordinals, 2.0, 7.0), PEAK_CEIL)
    return low, peak


def temperature_curve(f: StepFeatures, streams: SiteStreams) -> F64:
    """The building's smooth daily curve: low at 06:00, peak at 16:00, half-cosine in between."""
    needed = np.unique(np.concatenate([f.from_day, f.to_day]))
    low, peak = temperature_extremes(streams, needed)
    a_idx = np.searchsorted(needed, f.from_day)
    b_idx = np.searchsorted(needed, f.to_day)
    a = np.where(f.from_peak[:, None], peak[a_idx], low[a_idx])
    b = np.where(f.to_peak[:, None], peak[b_idx], low[b_idx])
    s = (1.0 - np.cos(np.pi * f.frac))[:, None] / 2.0
    curve: F64 = a + (b - a) * s
    return curve


def temperature(f: StepFeatures, streams: SiteStreams, curve: F64, sensor: Stream) -> F64:
    noise = uniform_between(streams[sensor], f.quarter, -TEMP_NOISE, TEMP_NOISE)
    out: F64 = np.clip(curve + noise, TEMP_MIN, TEMP_MAX)
    return out


def hvac(f: StepFeatures, streams: SiteStreams, t: F64, multiplier: int, noise: Stream, on: Stream) -> F64:
    """Cooling/heating energy driven by the temperature t: f(T)*m*|T-20|*2 + U(19.5,20.5), in [0, 100*m].

    Near the comfort point (|T-20| < 3) the unit runs only a third of the time.
    """
    dev = np.abs(t - 20.0)
    factor = np.where((t > TEMP_MAX) | (t < TEMP_MIN), 3.0, np.where((t > 25.0) | (t < 16.0), 2.0, 1.0))
    value = factor * multiplier * dev * 2.0 + uniform_between(streams[noise], f.quarter, 19.5, 20.5)
    value = np.clip(value, 0.0, 100.0 * multiplier)
    idle = (dev < 3.0) & (uniform(streams[on], f.quarter) < 2.0 / 3.0)
    out: F64 = np.where(idle, 0.0, value)
    return out


def appliance(f: StepFeatures, streams: SiteStreams, stream: Stream, top: float, full: tuple[int, int]) -> F64:
    """Full power during the ``full`` hours (local, of the quarter the reading covers), else U(0, top)."""
    hour = np.floor(f.hour)
    busy = (hour >= full[0]) & (hour < full[1])
    out: F64 = np.where(busy[:, None], top, uniform_between(streams[stream], f.quarter, 0.0, top))
    return out


def water(f: StepFeatures, streams: SiteStreams) -> F64:
    """Litres per quarter: morning, afternoon and night peaks, a daily offset and noise; never negative."""
    h = f.hour
    base = 3.0 * (_pdf(h, 7.0, 2.1) + _pdf(h, 23.0, 2.5) + _pdf(h, 16.0, 5.0)) + 0.18
    daily = uniform_between(streams[Stream.W1_DAY], f.day, -0.1, 0.1)
    noise = uniform_between(streams[Stream.W1], f.quarter, -0.1, 0.1)
    out: F64 = np.maximum(base[:, None] + daily + noise, 0.0) + 0.0  # + 0.0 turns -0.0 into 0.0
    return out


def meter_increments(f: StepFeatures, streams: SiteStreams, stream: Stream) -> F64:
    """Growth of a cumulative meter over the day each step closes (only meaningful at midnight steps)."""
    if stream is Stream.ETOT:
        return ETOT_PER_HOUR * f.day_hours[:, None] + uniform_between(streams[stream], f.day, -ETOT_JITTER,
                                                                      ETOT_JITTER)
    return WTOT_PER_DAY * f.day_hours[:, None] / 24.0 + uniform_between(streams[stream], f.day, -WTOT_JITTER,
                                                                        WTOT_JITTER)


def motion_offsets(streams: SiteStreams, day_ordinal: int, day_seconds: int) -> tuple[npt.NDArray[np.int64],
                                                                                       npt.NDArray[np.bool_]]:
    """Seconds after the day's start of each site's motion events, strictly inside the day: (offsets, used).

    Shapes (sites, MOV_MAX_EVENTS); ``used`` marks the 4 or 5 real events; used offsets are sorted per site.
    """
    day = np.array([day_ordinal], dtype=np.int64)
    count = np.where(uniform(streams[Stream.MOV_COUNT], day)[0] < 0.5, MOV_MIN_EVENTS, MOV_MAX_EVENTS)
    idx = day_ordinal * MOV_SLOTS + np.arange(MOV_MAX_EVENTS, dtype=np.int64)
    u = uniform(streams[Stream.MOV_TIME], idx).T  # (sites, events)
    offsets = 1 + np.floor(u * (day_seconds - 1)).astype(np.int64)  # 1 .. day_seconds - 1
    used = np.arange(MOV_MAX_EVENTS)[None, :] < count[:, None]
    offsets = np.where(used, offsets, day_seconds)  # unused slots sort last
    offsets.sort(axis=1)
    return offsets, used
