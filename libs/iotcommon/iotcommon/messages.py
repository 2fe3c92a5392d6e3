"""Versioned message types. Their JSON Schemas (the wire contract) are in ``iotcommon/schemas/*.v1.json``.

Encoding is compact JSON in UTF-8. ``decode_reading`` validates by hand (fast, no dependency) exactly what
``schemas/reading.v1.json`` says, plus the plausibility limits (``iotcommon.limits``: value range per sensor, event-time
window; docs/validation.md); a test checks the validator and the schema agree on valid and invalid samples. The cold
types (aggregate, late reading, dead letter) are decoded by ``iotcommon.wire`` against their compiled schemas.
"""

from __future__ import annotations

import base64
import json
import math
import re
from dataclasses import asdict, dataclass
from importlib import resources
from typing import Any

from iotcommon.days import ts_to_ms
from iotcommon.errors import MessageError
from iotcommon.limits import DEFAULT_LIMITS, OUTER_LIMITS, Limits
from iotcommon.sensors import SENSORS

VERSION = 1
SCHEMA_FILES = ("reading.v1.json", "aggregate.v1.json", "late.v1.json", "deadletter.v1.json")
# The one site id rule (the schemas say the same). Anchored with \Z, not $ ($ also matches before a trailing newline),
# so .match and .fullmatch agree; [0-9], not \d (which matches any Unicode digit).
# The grammars alone (no anchor, no capturing group) for callers that embed them in a larger pattern.
SITE_GRAMMAR = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}"
TS_GRAMMAR = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?Z"
SITE_PATTERN = re.compile(SITE_GRAMMAR + r"\Z")
TS_PATTERN = re.compile(TS_GRAMMAR)
MAX_SEQ = 2**63 - 1  # seq is a signed 64-bit integer downstream (Flink BIGINT)
_READING_KEYS = frozenset({"v", "site", "sensor", "ts", "value", "unit", "seq"})


def load_schema(filename: str) -> dict[str, Any]:
    """One of the checked-in JSON Schemas, parsed."""
    text = resources.files("iotcommon").joinpath("schemas", filename).read_text("utf-8")
    schema: dict[str, Any] = json.loads(text)
    return schema


def _dumps(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


@dataclass(frozen=True, slots=True)
class Reading:
    site: str
    sensor: str
    ts: str  # RFC 3339 UTC, e.g. 2020-01-01T00:15:00Z
    value: float
    unit: str
    seq: int

    @property
    def device(self) -> str:
        return f"{self.site}/{self.sensor}"

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, **asdict(self)}

    def encode(self) -> bytes:
        return _dumps(self.to_dict())


def reading_from_dict(obj: Any, limits: Limits = OUTER_LIMITS) -> Reading:
    """Validate a decoded reading against schema v1 and ``limits``. Raises MessageError with a dead-letter reason code.

    The default, ``OUTER_LIMITS``, is what no configuration can exceed: right for readings that the stream job has
    already validated with its own configured limits (the raw and late topics).
    """
    if not isinstance(obj, dict):
        raise MessageError("schema", f"expected a JSON object, got {type(obj).__name__}")
    if obj.keys() != _READING_KEYS:  # one comparison on the hot path; the details only for a bad message
        missing = _READING_KEYS - obj.keys()
        if missing:
            raise MessageError("schema", f"missing field(s): {', '.join(sorted(missing))}")
        extra = obj.keys() - _READING_KEYS
        raise MessageError("schema", f"unknown field(s): {', '.join(sorted(extra))}")
    if obj["v"] != VERSION or isinstance(obj["v"], bool):
        raise MessageError("schema", f"unsupported version {obj['v']!r} (expected {VERSION})")
    site, sensor, ts, value, unit, seq = obj["site"], obj["sensor"], obj["ts"], obj["value"], obj["unit"], obj["seq"]
    if not isinstance(site, str) or not SITE_PATTERN.fullmatch(site):
        raise MessageError("schema", f"bad site {site!r}")
    if not isinstance(sensor, str):
        raise MessageError("schema", f"sensor must be a string, got {sensor!r}")
    if sensor not in SENSORS:
        raise MessageError("unknown-sensor", f"unknown sensor {sensor!r}")
    if not isinstance(ts, str) or not TS_PATTERN.fullmatch(ts):
        raise MessageError("schema", f"ts must be RFC 3339 UTC like 2020-01-01T00:15:00Z, got {ts!r}")
    try:
        ts_ms = ts_to_ms(ts)  # no local day is computed before the window check below
    except ValueError as exc:
        raise MessageError("schema", f"ts {ts!r} is not a valid instant: {exc}") from exc
    if isinstance(value, bool) or not isinstance(value, (int, float)):  # a tuple: faster than int | float
        raise MessageError("schema", f"value must be a number, got {value!r}")
    try:
        number = float(value)  # compared and aggregated as a double
    except OverflowError:  # an integer beyond any double
        number = math.inf
    if not math.isfinite(number):
        raise MessageError("non-finite", f"value {_short(value)} is not finite as a double")
    if unit != SENSORS[sensor].unit:
        raise MessageError("schema", f"unit {unit!r} does not match sensor {sensor} ({SENSORS[sensor].unit})")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0 or seq > MAX_SEQ:
        raise MessageError("schema", f"seq must be an integer in 0..2^63-1, got {seq!r}")
    problem = limits.ts_problem(ts, ts_ms)
    if problem is not None:
        raise MessageError("out-of-range", problem)
    problem = limits.value_problem(sensor, number)
    if problem is not None:
        raise MessageError("out-of-range", problem)
    return Reading(site, sensor, ts, number, unit, seq)


def _short(value: float) -> str:
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}...({len(text)} characters)"


def decode_reading(payload: bytes | None, limits: Limits = DEFAULT_LIMITS) -> Reading:
    """Bytes from Kafka -> a valid Reading, or MessageError(unparsable | schema | unknown-sensor | non-finite |
    out-of-range). The reference validator of the readings topic: the stream job's fast path accepts exactly the
    same set (with the same ``limits``)."""
    if payload is None:
        raise MessageError("unparsable", "empty message (null value)")
    try:
        obj = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        # json.loads accepts NaN/Infinity literals; they are caught as non-finite below.
        raise MessageError("unparsable", f"not JSON: {exc}") from exc
    return reading_from_dict(obj, limits)


@dataclass(frozen=True, slots=True)
class Aggregate:
    site: str
    name: str  # AggDay[TH1]
    kind: str  # AggDay | AggDayDiff | AggDayRest | AggDayMov
    sensor: str
    day: str  # YYYY-MM-DD, local day of the site
    value: float
    unit: str
    count: int
    revision: int
    window_start: str
    window_end: str
    emitted_at: str

    @property
    def key(self) -> str:
        """Upsert key: one row per site, aggregate and day."""
        return f"{self.site}/{self.name}/{self.day}"

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, **asdict(self)}

    def encode(self) -> bytes:
        return _dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class LateReading:
    reading: Reading
    reason: str
    day: str
    late_by_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, "reading": self.reading.to_dict(), "reason": self.reason, "day": self.day,
                "late_by_ms": self.late_by_ms}

    def encode(self) -> bytes:
        return _dumps(self.to_dict())


@dataclass(frozen=True, slots=True)
class DeadLetter:
    reason: str
    detail: str
    source_topic: str
    partition: int
    offset: int
    key_b64: str | None
    payload_b64: str
    at: str

    @classmethod
    def of(cls, error: MessageError, topic: str, partition: int, offset: int, key: bytes | None,
           payload: bytes | None, at: str) -> DeadLetter:
        return cls(error.reason, error.detail, topic, partition, offset,
                   base64.b64encode(key).decode() if key is not None else None,
                   base64.b64encode(payload or b"").decode(), at)

    @property
    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)

    def to_dict(self) -> dict[str, Any]:
        return {"v": VERSION, **asdict(self)}

    def encode(self) -> bytes:
        return _dumps(self.to_dict())
