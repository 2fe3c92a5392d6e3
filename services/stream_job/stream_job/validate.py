"""Slow-path validation (pure): one input message -> a valid reading's fields or a dead letter.

Runs for messages the SQL fast path did not accept: invalid ones (including readings outside the plausibility limits,
reason ``out-of-range``), and valid ones in a non-canonical form. The limits arrive as the same string the Java fast
path gets (``iotcommon.limits.Limits.wire``), so both paths judge with the same limits.
"""

from __future__ import annotations

from functools import lru_cache
from typing import NamedTuple

from iotcommon.days import iso_z
from iotcommon.errors import MessageError
from iotcommon.limits import DEFAULT_LIMITS, Limits, ts_to_ms
from iotcommon.messages import DeadLetter, decode_reading

DEFAULT_WIRE = DEFAULT_LIMITS.wire()


class Verdict(NamedTuple):
    ok: bool
    dl: str | None  # deadletter.v1 JSON when not ok
    site: str | None
    sensor: str | None
    ts: str | None
    ts_ms: int | None
    val: float | None
    seq: int | None


@lru_cache(maxsize=8)
def _limits(wire: str) -> Limits:
    return Limits.from_wire(wire)


def classify(key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int, now: str,
             limits: str = DEFAULT_WIRE) -> Verdict:
    """Validate with iotcommon's reference decoder under ``limits`` (``Limits.wire`` text); reject what it rejects,
    with its reason code."""
    try:
        reading = decode_reading(value, _limits(limits))
    except MessageError as exc:
        return _dead(exc, key, value, topic, partition, offset, now)
    except (OverflowError, ValueError, RecursionError) as exc:  # defence in depth: the decoder maps these itself
        return _dead(MessageError("non-finite" if isinstance(exc, OverflowError) else "schema", str(exc)),
                     key, value, topic, partition, offset, now)
    return Verdict(True, None, reading.site, reading.sensor, reading.ts, ts_to_ms(reading.ts), reading.value,
                   reading.seq)


def _dead(error: MessageError, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
          now: str) -> Verdict:
    letter = DeadLetter.of(error, topic, max(partition, 0), max(offset, 0), key, value, now)
    return Verdict(False, letter.encode().decode(), None, None, None, None, None, None)


def now_iso() -> str:
    from datetime import UTC, datetime

    return iso_z(datetime.now(UTC))
