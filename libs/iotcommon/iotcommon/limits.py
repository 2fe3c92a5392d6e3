"""Plausibility limits of readings: a value range per sensor and an event-time window (docs/validation.md).

A reading whose value lies outside its sensor's range, or whose timestamp lies outside the window, is dead-lettered
with reason ``out-of-range``. Both bounds of a range are inclusive and compared on the value as a double. The window
is ``(ts_min, ts_max]`` at millisecond precision (sub-millisecond digits are truncated), like a day: a reading stamped
exactly ``ts_min`` is outside, one stamped exactly ``ts_max`` inside.

Settings (one format everywhere, loaded through ``iotcommon.config`` by each service that validates readings):

- ``IOTPIPE_VALUE_RANGES``: per-sensor overrides ``"W1=0:1e6,TH1=-80:120"``; sensors not named keep their default.
- ``IOTPIPE_TS_MIN`` / ``IOTPIPE_TS_MAX``: the window, RFC 3339 UTC (``2200-01-01T00:00:00Z``).

No configuration can go beyond the outer limits (``OUTER_LIMITS``: values within +-1e18, window within 1970-01-01 and
9000-01-01). They keep every sum of accepted values finite and every local day computable, whatever is configured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from iotcommon.days import ms_to_ts as ms_to_ts  # re-exported: time conversion lives in iotcommon.days
from iotcommon.days import ts_to_ms as ts_to_ms
from iotcommon.errors import ConfigError
from iotcommon.sensors import SENSORS

VALUE_BOUND = 1e18  # |bound| of any configured range

# Generous defaults from the seed's sensor table (temperatures seen 6-38.5 C; 15-minute energy 0-200 Wh; W1 about
# 0-1 l with small negative noise; Etot grows 62,400 Wh a day, Wtot 110 l a day; Mov1 events carry 1).
DEFAULT_RANGES: dict[str, tuple[float, float]] = {
    "TH1": (-100.0, 150.0),
    "TH2": (-100.0, 150.0),
    "HVAC1": (0.0, 100_000.0),
    "HVAC2": (0.0, 100_000.0),
    "MiAC1": (0.0, 100_000.0),
    "MiAC2": (0.0, 100_000.0),
    "W1": (-10.0, 100_000.0),
    "Etot": (0.0, 1e15),
    "Wtot": (0.0, 1e12),
    "Mov1": (0.0, 1_000.0),
}
DEFAULT_TS_MIN = "1970-01-01T00:00:00Z"
DEFAULT_TS_MAX = "2200-01-01T00:00:00Z"
OUTER_TS_MIN = "1970-01-01T00:00:00Z"
OUTER_TS_MAX = "9000-01-01T00:00:00Z"


@dataclass(frozen=True)
class Limits:
    """Value range per sensor (inclusive) and event-time window ``(ts_min_ms, ts_max_ms]`` in epoch milliseconds."""

    ranges: tuple[tuple[str, float, float], ...]  # (sensor, low, high) for every sensor, catalogue order
    ts_min_ms: int
    ts_max_ms: int
    _by_sensor: dict[str, tuple[float, float]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_sensor", {name: (low, high) for name, low, high in self.ranges})

    def range_of(self, sensor: str) -> tuple[float, float]:
        """The sensor's (low, high); KeyError for a sensor without a range."""
        return self._by_sensor[sensor]

    def value_problem(self, sensor: str, value: float) -> str | None:
        """None when ``value`` (a finite double) is within the sensor's range, else which bound it breaks."""
        low, high = self.range_of(sensor)
        if value < low:
            return f"value {value!r} is below the {sensor} minimum {low!r}"
        if value > high:
            return f"value {value!r} is above the {sensor} maximum {high!r}"
        return None

    def ts_problem(self, ts: str, ts_ms: int) -> str | None:
        """None when ``ts_ms`` lies in the window, else which bound it breaks."""
        if ts_ms <= self.ts_min_ms:
            return f"ts {ts} is not after the window start {ms_to_ts(self.ts_min_ms)}"
        if ts_ms > self.ts_max_ms:
            return f"ts {ts} is after the window end {ms_to_ts(self.ts_max_ms)}"
        return None

    def wire(self) -> str:
        """The limits as one string for the JVM fast path: ``ts=<min_ms>:<max_ms>;TH1=<low>:<high>;...`` (doubles
        as Python's repr, which Java's Double.parseDouble reads back to the same double)."""
        parts = [f"ts={self.ts_min_ms}:{self.ts_max_ms}"]
        parts += [f"{name}={low!r}:{high!r}" for name, low, high in self.ranges]
        return ";".join(parts)

    @classmethod
    def from_wire(cls, text: str) -> Limits:
        """Inverse of ``wire``."""
        ranges: list[tuple[str, float, float]] = []
        ts_min = ts_max = 0
        for part in text.split(";"):
            name, _, bounds = part.partition("=")
            low, _, high = bounds.partition(":")
            if name == "ts":
                ts_min, ts_max = int(low), int(high)
            else:
                ranges.append((name, float(low), float(high)))
        return cls(tuple(ranges), ts_min, ts_max)

    @classmethod
    def from_settings(cls, value_ranges: str = "", ts_min: str = DEFAULT_TS_MIN,
                      ts_max: str = DEFAULT_TS_MAX) -> Limits:
        """Limits from the settings' text (IOTPIPE_VALUE_RANGES, IOTPIPE_TS_MIN, IOTPIPE_TS_MAX). Raises ConfigError."""
        ranges = {**DEFAULT_RANGES, **parse_value_ranges(value_ranges)}
        min_ms = _setting_ms("IOTPIPE_TS_MIN", ts_min)
        max_ms = _setting_ms("IOTPIPE_TS_MAX", ts_max)
        if min_ms >= max_ms:
            msg = f"IOTPIPE_TS_MIN {ts_min} must be before IOTPIPE_TS_MAX {ts_max}"
            raise ConfigError(msg)
        return cls(tuple((name, *ranges[name]) for name in SENSORS), min_ms, max_ms)


def parse_value_ranges(text: str) -> dict[str, tuple[float, float]]:
    """``"W1=0:1e6,TH1=-80:120"`` -> {sensor: (low, high)}. Raises ConfigError naming the bad entry."""
    out: dict[str, tuple[float, float]] = {}
    for entry in filter(None, (e.strip() for e in text.split(","))):
        name, eq, bounds = entry.partition("=")
        name = name.strip()
        low_text, colon, high_text = bounds.partition(":")
        if not eq or not colon:
            msg = f"IOTPIPE_VALUE_RANGES: {entry!r} is not SENSOR=LOW:HIGH"
            raise ConfigError(msg)
        if name not in SENSORS:
            msg = f"IOTPIPE_VALUE_RANGES: unknown sensor {name!r} (known: {', '.join(SENSORS)})"
            raise ConfigError(msg)
        if name in out:
            msg = f"IOTPIPE_VALUE_RANGES: {name} is given twice"
            raise ConfigError(msg)
        try:
            low, high = float(low_text), float(high_text)
        except ValueError as exc:
            msg = f"IOTPIPE_VALUE_RANGES: {entry!r}: bounds must be numbers"
            raise ConfigError(msg) from exc
        if not (math.isfinite(low) and math.isfinite(high)) or max(abs(low), abs(high)) > VALUE_BOUND:
            msg = f"IOTPIPE_VALUE_RANGES: {entry!r}: bounds must lie within -1e18 and 1e18"
            raise ConfigError(msg)
        if low > high:
            msg = f"IOTPIPE_VALUE_RANGES: {entry!r}: the low bound is above the high bound"
            raise ConfigError(msg)
        out[name] = (low + 0.0, high + 0.0)  # -0.0 -> 0.0: one spelling on the wire
    return out


def format_value_ranges(ranges: dict[str, tuple[float, float]]) -> str:
    """Inverse of ``parse_value_ranges``."""
    return ",".join(f"{name}={low!r}:{high!r}" for name, (low, high) in ranges.items())


def _setting_ms(variable: str, text: str) -> int:
    try:
        ms = ts_to_ms(text.strip())
    except ValueError as exc:
        msg = f"{variable}: {text!r} is not an RFC 3339 timestamp like 2200-01-01T00:00:00Z"
        raise ConfigError(msg) from exc
    low, high = ts_to_ms(OUTER_TS_MIN), ts_to_ms(OUTER_TS_MAX)
    if not low <= ms <= high:
        msg = f"{variable}: {text} lies outside {OUTER_TS_MIN} .. {OUTER_TS_MAX}"
        raise ConfigError(msg)
    return ms


DEFAULT_LIMITS = Limits.from_settings()
OUTER_LIMITS = Limits(tuple((name, -VALUE_BOUND, VALUE_BOUND) for name in SENSORS), ts_to_ms(OUTER_TS_MIN),
                      ts_to_ms(OUTER_TS_MAX))
