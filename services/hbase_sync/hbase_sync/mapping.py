"""Kafka record -> HBase row. Pure: no I/O, no clock (the record's own timestamp dates a rejection).

Every input topic has one mapping; a record that cannot be mapped becomes a row of the ``deadletters`` table keyed by
where the record was (topic, partition, offset), so the worker writes it and keeps going. Every key is a function of
the record alone, so a replayed record rewrites the same row.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

import orjson

from iotcommon import hbase_layout as layout
from iotcommon.days import ms_to_ts, ts_to_ms
from iotcommon.errors import MessageError
from iotcommon.limits import OUTER_LIMITS
from iotcommon.messages import SITE_GRAMMAR, TS_GRAMMAR, VERSION, DeadLetter, reading_from_dict
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics
from iotcommon.wire import aggregate_from_dict, deadletter_from_dict, late_from_dict

MESSAGE = layout.MESSAGE_COLUMN


class KafkaRecord(Protocol):
    """What the mapping reads of a record: the accessor methods of confluent_kafka.Message."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class Row(NamedTuple):
    """One HBase row to put. ``revision`` > 0 marks an aggregate: the store keeps the highest revision per key.

    A tuple rather than a dataclass: one is made per record on the hot path."""

    table: str
    key: bytes
    cells: dict[bytes, bytes]
    revision: int = 0
    rejected: str | None = None  # reason code when this row is a dead letter made by this worker


def _json(payload: bytes | None) -> dict[str, Any]:
    if payload is None:
        raise MessageError("unparsable", "empty message (null value)")
    try:
        obj = orjson.loads(payload)  # fast path; same Python values as the json module for valid JSON
    except orjson.JSONDecodeError:
        try:  # the json module decides what is wrong (and accepts NaN, which is then refused as non-finite)
            obj = json.loads(payload)
        except (UnicodeDecodeError, ValueError) as exc:
            raise MessageError("unparsable", f"not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MessageError("schema", f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


_TS_CACHE: dict[str, int] = {}  # readings of one step share timestamps: parse each once
_TS_CACHE_MAX = 100_000


def _epoch_ms(ts: str) -> int:
    ms = _TS_CACHE.get(ts)
    if ms is None:
        if len(_TS_CACHE) >= _TS_CACHE_MAX:
            _TS_CACHE.clear()
        ms = _TS_CACHE[ts] = ts_to_ms(ts)
    return ms


def _reading_row_key(site: str, sensor: str, ts: str, seq: int) -> bytes:
    try:
        return layout.reading_key(site, sensor, _epoch_ms(ts), seq)
    except ValueError as exc:
        raise MessageError("unmappable", f"no row key for reading {site}/{sensor} at {ts} seq {seq}: {exc}") from exc


# The canonical form of a reading: Reading.encode's (and the simulators') fields in that order, no spaces, a plain
# decimal value with at most 15 integer digits (|value| < 1e15: finite, inside OUTER_LIMITS' +-1e18) and a seq that
# fits the row key. The stream job passes such bytes to .raw unchanged. map_raw maps a record in this form without
# building a dict and a Reading; every other record, valid or not, takes the full path (orjson + reading_from_dict),
# which alone decides rejections. So the fast path only accepts what the full path accepts, with the same key.
_CANONICAL = re.compile((
    r'\{"v":' + str(VERSION) + r',"site":"(' + SITE_GRAMMAR + r')","sensor":"([A-Za-z0-9]{1,16})",'
    r'"ts":"(' + TS_GRAMMAR + r')",'
    r'"value":-?(?:0|[1-9][0-9]{0,14})(?:\.[0-9]+)?,"unit":"([^"\\]{0,32})","seq":(0|[1-9][0-9]{0,9})\}\Z').encode())
_UNITS = {name.encode(): sensor.unit.encode() for name, sensor in SENSORS.items()}
_FAST_TS: dict[bytes, int] = {}  # ts -> epoch ms if the full path accepts it and it fits a row key, else -1
_FAST_KEYS: dict[tuple[bytes, bytes], tuple[str, str]] = {}  # (site, sensor) as bytes -> as str


def _fast_ts(ts: bytes) -> int:
    ms = _FAST_TS.get(ts)
    if ms is None:
        if len(_FAST_TS) >= _TS_CACHE_MAX:
            _FAST_TS.clear()
        text = ts.decode()
        try:
            ms = ts_to_ms(text)
        except ValueError:
            ms = -1
        if ms >= 0 and (OUTER_LIMITS.ts_problem(text, ms) is not None or ms >= 10**13):
            ms = -1
        _FAST_TS[ts] = ms
    return ms


def canonical_raw_key(payload: bytes) -> bytes | None:
    """The row key of a raw reading in the canonical form that the full path would accept, else None."""
    match = _CANONICAL.match(payload)
    if match is None:
        return None
    site, sensor, ts, unit, seq = match.groups()
    if _UNITS.get(sensor) != unit:  # unknown sensor, or not its unit
        return None
    ms = _fast_ts(ts)
    if ms < 0:
        return None
    names = _FAST_KEYS.get((site, sensor))
    if names is None:
        if len(_FAST_KEYS) >= _TS_CACHE_MAX:
            _FAST_KEYS.clear()
        names = _FAST_KEYS[site, sensor] = (site.decode(), sensor.decode())
    return layout.reading_key(names[0], names[1], ms, int(seq))


def map_raw(payload: bytes | None) -> Row:
    key = canonical_raw_key(payload) if payload is not None else None
    if key is not None:
        return Row("raw", key, {MESSAGE: payload or b""})
    reading = reading_from_dict(_json(payload))
    key = _reading_row_key(reading.site, reading.sensor, reading.ts, reading.seq)
    return Row("raw", key, {MESSAGE: payload or b""})


def map_late(payload: bytes | None) -> Row:
    late = late_from_dict(_json(payload))
    r = late.reading
    return Row("late", _reading_row_key(r.site, r.sensor, r.ts, r.seq), {MESSAGE: payload or b""})


def map_aggregate(payload: bytes | None) -> Row:
    agg = aggregate_from_dict(_json(payload))
    return Row("aggregates", layout.aggregate_key(agg.site, agg.name, agg.day), {MESSAGE: payload or b""},
               revision=agg.revision)


def map_deadletter(payload: bytes | None) -> Row:
    """A dead letter of the stream job: keyed by where the rejected record was, not where the dead letter is."""
    dl = deadletter_from_dict(_json(payload))
    try:
        key = layout.deadletter_key(dl.source_topic, dl.partition, dl.offset)
    except ValueError as exc:
        raise MessageError("unmappable", f"no row key for dead letter: {exc}") from exc
    return Row("deadletters", key, {MESSAGE: payload or b""})


def stored_revision(message: bytes) -> int:
    """The revision inside a stored aggregate (d:m). A cell that does not parse counts as revision 0 (replaceable)."""
    try:
        revision = json.loads(message).get("revision", 0)
    except (UnicodeDecodeError, ValueError, AttributeError):
        return 0
    return revision if _is_int(revision) else 0


def latest_per_key(rows: Iterable[Row]) -> dict[bytes, Row]:
    """Aggregate rows reduced to the highest revision per row key (on a tie the later row wins)."""
    latest: dict[bytes, Row] = {}
    for row in rows:
        current = latest.get(row.key)
        if current is None or row.revision >= current.revision:
            latest[row.key] = row
    return latest


class Mapper:
    """Routes each record by its topic; anything that fails becomes a dead-letter row with the reason."""

    def __init__(self, topics: Topics) -> None:
        self.topics = topics
        self._routes: dict[str, Callable[[bytes | None], Row]] = {
            topics.raw: map_raw,
            topics.aggregates: map_aggregate,
            topics.late: map_late,
            topics.deadletter: map_deadletter,
        }

    @property
    def input_topics(self) -> list[str]:
        return list(self._routes)

    def map(self, record: KafkaRecord) -> Row:
        route = self._routes.get(record.topic() or "")
        try:
            if route is None:
                raise MessageError("unmappable", f"{record.topic()!r} is not an input topic of this worker")
            return route(record.value())
        except MessageError as exc:
            return reject(record, exc)


def reject(record: KafkaRecord, error: MessageError) -> Row:
    """The dead-letter row for a record this worker cannot map: deterministic, so a replay rewrites the same row.

    ``at`` is the record's Kafka timestamp (when it entered the topic) rather than the wall clock, so the row's
    content does not depend on when (or how often) it was processed.
    """
    topic, partition, offset = record.topic() or "", record.partition() or 0, record.offset() or 0
    kind, ts_ms = record.timestamp()
    at = ms_to_ts(max(ts_ms, 0) if kind else 0)
    letter = DeadLetter.of(error, topic, partition, offset, record.key(), record.value(), at)
    return Row("deadletters", layout.deadletter_key(topic, partition, offset), {MESSAGE: letter.encode()},
               rejected=error.reason)
