"""The simulation of many sites: turns the step grid and the device models into what is sent at each step.

``Simulation.run`` yields one ``StepOutput`` per step, in order. Readings sharing a sensor, timestamp and sequence
number across all sites are kept together as a ``Block`` (one value per site), so that encoding and sending stay
vectorised; motion events are individual ``Event`` s. Pure and deterministic: same configuration, same output.

Sequence numbers count each device's readings in generation (= event-time) order from 0: a 15-minute sensor's reading
at step k has seq k-1, the n-th midnight reading of a meter seq n-1, the n-th motion event seq n-1. A withheld W1
reading keeps the seq it was generated with, so it arrives with a smaller seq than readings already sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from iot_simulators import devices
from iot_simulators.devices import SiteStreams
from iot_simulators.late import LateRule, delivered_at, withheld_delay
from iot_simulators.rng import F64, Stream
from iot_simulators.timeline import STEP_S, StepFeatures, Timeline, day_bounds
from iotcommon import days

QUARTER_SENSORS = ("TH1", "TH2", "HVAC1", "HVAC2", "MiAC1", "MiAC2", "W1")
METERS = ("Etot", "Wtot")
LATE_SENSOR = "W1"
MAX_CHUNK_VALUES = 250_000  # steps x sites computed at once


@dataclass(frozen=True, slots=True)
class Block:
    """One reading per site: same sensor, timestamp and seq; ``milli[i]`` belongs to site i.

    Values are kept in thousandths of the unit (the wire precision: three decimals) as Python ints, converted once
    per chunk, so that encoding needs no per-step numpy work.
    """

    sensor: str
    ts: str
    seq: int
    milli: list[int]

    @property
    def values(self) -> list[float]:
        return [m / 1000 for m in self.milli]


def to_milli(values: F64) -> list[int]:
    """One row of values rounded to thousandths (three decimals)."""
    out: list[int] = np.rint(values * 1000.0).astype(np.int64).tolist()
    return out


def rows_to_milli(values: F64) -> list[list[int]]:
    """``to_milli`` for every row of a (steps, sites) array at once."""
    out: list[list[int]] = np.rint(values * 1000.0).astype(np.int64).tolist()
    return out


@dataclass(frozen=True, slots=True)
class Event:
    """One reading of one site (motion)."""

    site: int  # index into the simulation's sites
    sensor: str
    ts: str
    seq: int
    value: float


@dataclass(frozen=True, slots=True)
class StepOutput:
    step: int
    instant_s: int  # epoch seconds of the step
    blocks: list[Block]  # on-time readings (withheld ones are missing here)
    events: list[Event]
    late: list[Block]  # withheld readings delivered at this step (older timestamps)


@dataclass
class _MeterState:
    value: F64
    seq: int = 0


@dataclass
class Simulation:
    timeline: Timeline
    site_numbers: list[int]
    seed: int
    late_rules: tuple[LateRule, ...] = ()
    chunk_steps: int = 0  # 0: derived from the number of sites
    streams: SiteStreams = field(init=False)
    withheld: dict[int, Block] = field(init=False, default_factory=dict)
    _meters: dict[str, _MeterState] = field(init=False, default_factory=dict)
    _motion_seq: list[int] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self.streams = SiteStreams.of(self.seed, self.site_numbers)
        n = len(self.site_numbers)
        if self.chunk_steps <= 0:
            self.chunk_steps = max(1, min(96, MAX_CHUNK_VALUES // max(n, 1)))
        self._meters = {"Etot": _MeterState(np.full(n, devices.ETOT_BASE)),
                        "Wtot": _MeterState(np.full(n, devices.WTOT_BASE))}
        self._motion_seq = [0] * n

    @property
    def sites(self) -> int:
        return len(self.site_numbers)

    def run(self, stop: int | None = None) -> Iterator[StepOutput]:
        """Steps 0, 1, ... up to ``stop`` (exclusive; None = forever)."""
        k = 0
        while stop is None or k < stop:
            n = self.chunk_steps if stop is None else min(self.chunk_steps, stop - k)
            yield from self._chunk(k, n)
            k += n

    def drain(self) -> list[Block]:
        """Withheld readings not delivered yet, oldest first; they count as delivered after this call."""
        out = [self.withheld.pop(j) for j in sorted(self.withheld)]
        return out

    # -- internals -------------------------------------------------------------------------------------------------

    def _chunk(self, first: int, n: int) -> Iterator[StepOutput]:
        f = self.timeline.features(first, n)
        s = self.streams
        curve = devices.temperature_curve(f, s)
        th1 = devices.temperature(f, s, curve, Stream.TH1)
        values: dict[str, F64] = {
            "TH1": th1,
            "TH2": devices.temperature(f, s, curve, Stream.TH2),
            "HVAC1": devices.hvac(f, s, th1, 1, Stream.HVAC1, Stream.HVAC1_ON),
            "HVAC2": devices.hvac(f, s, th1, 2, Stream.HVAC2, Stream.HVAC2_ON),
            "MiAC1": devices.appliance(f, s, Stream.MIAC1, devices.MIAC_MAX["MiAC1"], devices.MIAC1_FULL_HOURS),
            "MiAC2": devices.appliance(f, s, Stream.MIAC2, devices.MIAC_MAX["MiAC2"], devices.MIAC2_FULL_HOURS),
            "W1": devices.water(f, s),
        }
        increments = {"Etot": devices.meter_increments(f, s, Stream.ETOT),
                      "Wtot": devices.meter_increments(f, s, Stream.WTOT)}
        milli = {sensor: rows_to_milli(v) for sensor, v in values.items()}
        motion = self._motion(f)
        for i in range(n):
            k = first + i
            ts = f.ts[i]
            blocks: list[Block] = []
            if k >= 1:
                for sensor in QUARTER_SENSORS:
                    block = Block(sensor, ts, k - 1, milli[sensor][i])
                    if sensor == LATE_SENSOR and withheld_delay(k, self.late_rules):
                        self.withheld[k] = block
                    else:
                        blocks.append(block)
            if f.midnight[i]:
                for meter in METERS:
                    state = self._meters[meter]
                    if state.seq > 0:  # the first midnight reports the base value
                        state.value = state.value + increments[meter][i]
                    blocks.append(Block(meter, ts, state.seq, to_milli(state.value)))
                    state.seq += 1
            late = [self.withheld.pop(j) for j in delivered_at(k, self.late_rules) if j in self.withheld]
            yield StepOutput(k, int(f.epoch_s[i]), blocks, motion.get(k, []), late)

    def _motion(self, f: StepFeatures) -> dict[int, list[Event]]:
        """Motion events in the chunk's time range (after the start), grouped by the step that sends them."""
        start_s = self.timeline.start_s
        lo = max(int(f.epoch_s[0]) - STEP_S, start_s)  # exclusive
        hi = int(f.epoch_s[-1])  # inclusive
        if hi <= lo:
            return {}
        tz = self.timeline.tz
        first_day = days.day_of(datetime.fromtimestamp(lo + 1, UTC), tz).toordinal()
        last_day = days.day_of(datetime.fromtimestamp(hi, UTC), tz).toordinal()
        found: list[tuple[int, int]] = []  # (epoch s, site index)
        for day in range(first_day, last_day + 1):
            begin, end = day_bounds(day, tz)
            offsets, used = devices.motion_offsets(self.streams, day, end - begin)
            at = begin + offsets
            mask = used & (at > lo) & (at <= hi)
            sites_idx, _ = np.nonzero(mask)
            found.extend(zip(at[mask].tolist(), sites_idx.tolist(), strict=True))
        found.sort()
        out: dict[int, list[Event]] = {}
        for t, site in found:
            k = -(-(t - start_s) // STEP_S)  # the step whose quarter contains t
            seq = self._motion_seq[site]
            self._motion_seq[site] = seq + 1
            ts = days.iso_z(datetime.fromtimestamp(t, UTC))
            out.setdefault(k, []).append(Event(site, "Mov1", ts, seq, 1.0))
        return out
