"""Slow-path validation (pure): one input message -> a valid reading's fields or a dead letter.

Runs for messages the SQL fast path did not recognise: invalid ones, and valid ones in a non-canonical form.
"""

from __future__ import annotations

from typing import NamedTuple

from iotcommon.days import iso_z
from iotcommon.errors import MessageError
from iotcommon.messages import DeadLetter, decode_reading
from stream_job.core import ts_ms_of

_MAX_SEQ = 2**63 - 1


class Verdict(NamedTuple):
    ok: bool
    dl: str | None  # deadletter.v1 JSON when not ok
    site: str | None
    sensor: str | None
    ts: str | None
    ts_ms: int | None
    val: float | None
    seq: int | None


def classify(key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int, now: str) -> Verdict:
    """Validate with iotcommon's reference decoder; reject what it rejects with its reason code."""
    try:
        reading = decode_reading(value)
        if reading.seq > _MAX_SEQ:
            raise MessageError("schema", f"seq {reading.seq} does not fit in 64 bits")
        ts_ms = ts_ms_of(reading.ts)
    except MessageError as exc:
        return _dead(exc, key, value, topic, partition, offset, now)
    except (OverflowError, ValueError, RecursionError) as exc:  # e.g. an integer value too large for a double
        return _dead(MessageError("non-finite" if isinstance(exc, OverflowError) else "schema", str(exc)),
                     key, value, topic, partition, offset, now)
    return Verdict(True, None, reading.site, reading.sensor, reading.ts, ts_ms, reading.value, reading.seq)


def _dead(error: MessageError, key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
          now: str) -> Verdict:
    letter = DeadLetter.of(error, topic, max(partition, 0), max(offset, 0), key, value, now)
    return Verdict(False, letter.encode().decode(), None, None, None, None, None, None)


def now_iso() -> str:
    from datetime import UTC, datetime

    return iso_z(datetime.now(UTC))
