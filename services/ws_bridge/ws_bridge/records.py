"""Pure: what the bridge knows about the records of each stream (no I/O).

A ``Record`` is one message of one stream, decoded once, with the fields the bridge filters, orders and deduplicates
on, and its wire form (``item``: the JSON text of one element of a data frame's ``records`` list) encoded once and
shared by every client that receives it.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import dataclass
from typing import Any, Protocol

from iotcommon import wire
from iotcommon.days import ts_to_ms
from iotcommon.errors import MessageError
from iotcommon.messages import reading_from_dict
from iotcommon.topics import Topics

STREAMS = ("raw", "aggregates", "late", "deadletters")
MAX_MS = 9_999_999_999_998  # the newest event time history can express (13-digit row keys: 2286-11-20)
_TABLE_OF_STREAM = {"raw": "raw", "aggregates": "aggregates", "late": "late", "deadletters": "deadletters"}

def table_of(stream: str) -> str:
    return _TABLE_OF_STREAM[stream]


def topic_of(topics: Topics, stream: str) -> str:
    return {"raw": topics.raw, "aggregates": topics.aggregates, "late": topics.late,
            "deadletters": topics.deadletter}[stream]


@dataclass(frozen=True, slots=True)
class Record:
    stream: str
    site: str | None
    sensor: str | None
    event_ms: int  # event time: reading ts, aggregate window end, dead letter's rejection time
    ident: str  # identity for de-duplication between history and live
    data: dict[str, Any]
    item: str  # JSON text of the element sent to clients


class Routed(Protocol):
    """What filters route on: a Record, or a raw reading not decoded yet (``ws_bridge.lazy.PendingRaw``)."""

    @property
    def stream(self) -> str: ...

    @property
    def site(self) -> str | None: ...

    @property
    def sensor(self) -> str | None: ...


def _fields(stream: str, data: Any) -> tuple[str | None, str | None, int, str]:
    """(site, sensor, event_ms, ident) of a decoded message, checked by the decoder of its type (iotcommon: readings
    by the hand-written check, the other types by their JSON Schemas)."""
    try:
        if stream in ("raw", "late"):
            r = reading_from_dict(data) if stream == "raw" else wire.late_from_dict(data).reading
            return r.site, r.sensor, ts_to_ms(r.ts), f"{r.site}/{r.sensor}/{r.ts}/{r.seq}"
        if stream == "aggregates":
            a = wire.aggregate_from_dict(data)
            return a.site, a.sensor, ts_to_ms(a.window_end), f"{a.site}/{a.name}/{a.day}#{a.revision}"
        if stream == "deadletters":
            d = wire.deadletter_from_dict(data)
            site, sensor = _dead_letter_origin(d.payload_b64)
            return site, sensor, ts_to_ms(d.at), f"{d.source_topic}/{d.partition}/{d.offset}"
    except (ValueError, OverflowError) as exc:
        raise MessageError("schema", f"bad timestamp: {exc}") from exc
    raise MessageError("schema", f"unknown stream {stream!r}")


def _dead_letter_origin(payload_b64: str) -> tuple[str | None, str | None]:
    """Best effort: the site/sensor a dead letter's original payload names, if it is JSON that names them."""
    try:
        original = json.loads(base64.b64decode(payload_b64))
    except (ValueError, TypeError, RecursionError):
        return None, None
    if not isinstance(original, dict):
        return None, None
    site, sensor = original.get("site"), original.get("sensor")
    return (site if isinstance(site, str) else None), (sensor if isinstance(sensor, str) else None)


def decode(stream: str, value: bytes | None, *, kafka_ts: int | None = None,
           tracker: OrderTracker | None = None, out_of_order: bool = False) -> Record:
    """Kafka value (or HBase ``d:m`` cell) -> Record; raises MessageError when it is not a message of that stream.

    With a ``tracker`` (live records), raw and late readings older than their device's newest are marked out of order;
    without one, ``out_of_order`` is the flag (a reading the tracker saw at arrival: ``ws_bridge.lazy``).
    """
    if value is None:
        raise MessageError("unparsable", "empty value")
    try:
        data = _DECODER.decode(value.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise MessageError("unparsable", f"not JSON: {exc}") from exc
    site, sensor, event_ms, ident = _fields(stream, data)
    if not 0 <= event_ms <= MAX_MS:
        raise MessageError("schema", f"event time {event_ms} ms lies outside 1970-01-01 .. 2286-11-20")
    if tracker is not None:
        out_of_order = stream in ("raw", "late") and tracker.is_out_of_order(stream, f"{site}/{sensor}", event_ms)
    text = value.decode() if _is_compact(value) else json.dumps(data, separators=(",", ":"))
    return Record(stream, site, sensor, event_ms, ident, data, encode_item(text, stream, data, kafka_ts, out_of_order))


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON: a browser's JSON.parse would refuse the whole frame that carries one."""
    raise ValueError(f"{name} is not a JSON value")


# one decoder for every record: json.loads with an option builds a new JSONDecoder per call (py-spy at 10,000
# readings/s: 160 of the 859 samples in the tail's decode)
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _is_compact(value: bytes) -> bool:
    return b"\n" not in value


def encode_item(data_json: str, stream: str, data: dict[str, Any], kafka_ts: int | None, out_of_order: bool) -> str:
    """One element of a data frame: the message itself under "data", plus what the bridge knows about it."""
    head = f'{{"kafka_ts":{"null" if kafka_ts is None else int(kafka_ts)}'
    if stream == "aggregates":
        revision = data.get("revision")
        head += f',"revision":{"true" if isinstance(revision, int) and revision > 1 else "false"}'
    if stream in ("raw", "late"):
        head += f',"out_of_order":{"true" if out_of_order else "false"}'
    return f'{head},"data":{data_json}}}'


class OrderTracker:
    """Marks readings older than the newest one already seen of the same device (per stream): out-of-order rows."""

    def __init__(self) -> None:
        self._newest: dict[tuple[str, str], int] = {}

    def is_out_of_order(self, stream: str, device: str, event_ms: int) -> bool:
        key = (stream, device)
        newest = self._newest.get(key)
        if newest is None or event_ms >= newest:
            self._newest[key] = event_ms
            return False
        return True


_STR, _INT, _NUM = "string", "integer", "number"
# the fields of each stream's HTTP rows and their JSON types (ws_bridge.openapi builds the rows' schemas from them)
_READING_FIELDS = {"ts": _STR, "site": _STR, "sensor": _STR, "value": _NUM, "unit": _STR, "seq": _INT}
ROW_FIELDS: dict[str, dict[str, str]] = {
    "raw": _READING_FIELDS,
    "late": {**_READING_FIELDS, "reason": _STR, "day": _STR, "late_by_ms": _INT},
    "aggregates": {"day": _STR, "site": _STR, "name": _STR, "kind": _STR, "sensor": _STR, "value": _NUM, "unit": _STR,
                   "count": _INT, "revision": _INT, "emitted_at": _STR},
    "deadletters": {"at": _STR, "reason": _STR, "detail": _STR, "source_topic": _STR, "partition": _INT,
                    "offset": _INT, "site": _STR, "sensor": _STR, "payload": _STR},
}


def _typed(value: Any, kind: str) -> Any:
    """``value`` if it has the JSON type ``kind`` (numbers finite), else None: stored rows never break the API."""
    if kind == _STR:
        return value if isinstance(value, str) else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if kind == _INT:
        return value if isinstance(value, int) else None
    return value if math.isfinite(value) else None


def row_of(record: Record) -> dict[str, Any]:
    """A flat row for the HTTP API (one JSON object per record; ``time`` = event time in epoch ms).

    Every field of ``ROW_FIELDS[stream]`` is present, with its type or null."""
    data = record.data
    source: dict[str, Any]
    if record.stream == "raw":
        source = data
    elif record.stream == "late":
        reading = data.get("reading")
        source = {**(reading if isinstance(reading, dict) else {}), "reason": data.get("reason"),
                  "day": data.get("day"), "late_by_ms": data.get("late_by_ms")}
    elif record.stream == "aggregates":
        source = data
    else:
        try:
            payload = base64.b64decode(data.get("payload_b64") or "").decode("utf-8", "replace")
        except (ValueError, TypeError):
            payload = ""
        source = {**data, "site": record.site, "sensor": record.sensor, "payload": payload}
    fields = ROW_FIELDS[record.stream]
    return {"time": record.event_ms, **{k: _typed(source.get(k), kind) for k, kind in fields.items()}}
