"""Pure: the websocket protocol's messages (documented in docs/bridge-protocol.md, schemas in ws_bridge/schemas/).

Client -> server: ``subscribe``, ``unsubscribe``, ``ping``. Server -> client: ``hello``, ``subscribed``, ``data``,
``history_end``, ``unsubscribed``, ``overflow``, ``heartbeat``, ``pong``, ``error``. Every frame is one JSON object
in a text frame.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from iotcommon.days import ts_to_ms
from iotcommon.errors import IoTError
from iotcommon.messages import SITE_PATTERN
from iotcommon.sensors import SENSORS
from ws_bridge.records import MAX_MS, STREAMS, Routed

PROTOCOL_VERSION = 1
R = TypeVar("R", bound=Routed)
MAX_MESSAGE_CHARS = 16_384
_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_SUBSCRIBE_KEYS = frozenset({"type", "id", "stream", "sites", "sensors", "since", "last", "limit"})


class ProtocolError(IoTError):
    """A client message the bridge cannot act on; becomes an ``error`` frame."""

    def __init__(self, code: str, detail: str, sub_id: str | None = None) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.sub_id = sub_id


@dataclass(frozen=True, slots=True)
class Filter:
    """Which records of a stream a subscription wants. None = any."""

    sites: frozenset[str] | None = None
    sensors: frozenset[str] | None = None

    def matches(self, record: Routed) -> bool:
        if record.stream == "deadletters" and record.site is None:
            return True  # a dead letter whose payload names no site cannot be attributed: every subscriber sees it
        if self.sites is not None and record.site not in self.sites:
            return False
        return self.sensors is None or record.sensor in self.sensors

    def select(self, stream: str, records: list[R]) -> list[R]:
        """The records of ``stream`` (a batch of one stream) that match, in order: ``matches`` without a call per
        record (the fan-out runs this over every live record)."""
        sites, sensors = self.sites, self.sensors
        if stream == "deadletters":
            return [r for r in records if self.matches(r)]
        if sensors is None:
            return list(records) if sites is None else [r for r in records if r.site in sites]
        if sites is None:
            return [r for r in records if r.sensor in sensors]
        return [r for r in records if r.site in sites and r.sensor in sensors]


@dataclass(frozen=True, slots=True)
class Subscribe:
    id: str
    stream: str
    filter: Filter
    since_ms: int | None = None  # history: records with event time >= since
    last: int | None = None  # history: the newest `last` records of each series
    limit: int | None = None  # most history records

    @property
    def wants_history(self) -> bool:
        return self.since_ms is not None or self.last is not None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    id: str


@dataclass(frozen=True, slots=True)
class Ping:
    id: str | None


ClientMessage = Subscribe | Unsubscribe | Ping


def parse(text: str) -> ClientMessage:
    """One client text frame -> a message; raises ProtocolError."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise ProtocolError("too-large", f"messages are limited to {MAX_MESSAGE_CHARS} characters")
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise ProtocolError("bad-json", f"not JSON: {str(exc)[:200]}") from None
    if not isinstance(obj, dict):
        raise ProtocolError("bad-message", "a message is a JSON object with a 'type'")
    kind = obj.get("type")
    sub_id = obj.get("id") if isinstance(obj.get("id"), str) else None
    if kind == "subscribe":
        return _subscribe(obj)
    if kind == "unsubscribe":
        return Unsubscribe(_id(obj))
    if kind == "ping":
        return Ping(sub_id)
    raise ProtocolError("unknown-type", f"unknown message type {kind!r}; use subscribe, unsubscribe or ping", sub_id)


def _id(obj: dict[str, Any]) -> str:
    sub_id = obj.get("id")
    if not isinstance(sub_id, str) or not _ID.fullmatch(sub_id):
        raise ProtocolError("bad-message", "'id' must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return sub_id


def _names(obj: dict[str, Any], key: str, sub_id: str, valid: re.Pattern[str] | None,
           known: dict[str, Any] | None) -> frozenset[str] | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value) or len(value) > 256:
        raise ProtocolError("bad-message", f"'{key}' must be a non-empty list of strings", sub_id)
    for v in value:
        if valid is not None and not valid.fullmatch(v):
            raise ProtocolError("bad-message", f"bad {key[:-1]} {v!r}", sub_id)
        if known is not None and v not in known:
            raise ProtocolError("bad-message", f"unknown {key[:-1]} {v!r}; known: {', '.join(known)}", sub_id)
    return frozenset(value)


def _subscribe(obj: dict[str, Any]) -> Subscribe:
    sub_id = _id(obj)
    extra = obj.keys() - _SUBSCRIBE_KEYS
    if extra:
        raise ProtocolError("bad-message", f"unknown field(s): {', '.join(sorted(extra))}", sub_id)
    stream = obj.get("stream")
    if stream not in STREAMS:
        raise ProtocolError("unknown-stream", f"stream must be one of {', '.join(STREAMS)}", sub_id)
    filt = Filter(_names(obj, "sites", sub_id, SITE_PATTERN, None), _names(obj, "sensors", sub_id, None, SENSORS))
    since_ms = None
    if obj.get("since") is not None:
        since = obj["since"]
        try:
            if not isinstance(since, str) or datetime.fromisoformat(since).tzinfo is None:
                raise ValueError
            since_ms = ts_to_ms(since)
            if not 0 <= since_ms <= MAX_MS:
                raise ValueError
        except (ValueError, OverflowError):
            raise ProtocolError("bad-message", "'since' must be an RFC 3339 instant with a zone, "
                                "between 1970 and 2286, e.g. 2020-01-01T00:00:00Z", sub_id) from None
    last = _positive(obj, "last", sub_id)
    limit = _positive(obj, "limit", sub_id)
    if since_ms is not None and last is not None:
        raise ProtocolError("bad-message", "give 'since' or 'last', not both", sub_id)
    if (since_ms is not None or last is not None) and stream != "deadletters" and filt.sites is None:
        raise ProtocolError("bad-message", "history ('since' or 'last') needs 'sites': HBase rows are keyed by site",
                            sub_id)
    return Subscribe(sub_id, str(stream), filt, since_ms, last, limit)


def _positive(obj: dict[str, Any], key: str, sub_id: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ProtocolError("bad-message", f"'{key}' must be a positive integer", sub_id)
    return value


# --- server frames -----------------------------------------------------------------------------------------------


def _dump(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def hello(replica: str, heartbeat_s: float, queue_records: int, max_subscriptions: int, site_tz: str,
          site_zones: Mapping[str, str]) -> str:
    """``site_tz``: every site's zone unless ``site_zones`` (site -> IANA zone) names another."""
    return _dump({"type": "hello", "protocol": PROTOCOL_VERSION, "replica": replica, "streams": list(STREAMS),
                  "heartbeat_s": heartbeat_s, "queue_records": queue_records,
                  "max_subscriptions": max_subscriptions, "site_tz": site_tz, "site_zones": dict(site_zones)})


def subscribed(sub: Subscribe) -> str:
    return _dump({"type": "subscribed", "id": sub.id, "stream": sub.stream, "history": sub.wants_history})


def unsubscribed(sub_id: str) -> str:
    return _dump({"type": "unsubscribed", "id": sub_id})


def history_end(sub_id: str, count: int, truncated: bool) -> str:
    return _dump({"type": "history_end", "id": sub_id, "count": count, "truncated": truncated})


def data_head(sub_id: str, stream: str, phase: str) -> str:
    """The constant start of a data frame; the record items and ``]}`` follow."""
    return f'{{"type":"data","id":{json.dumps(sub_id)},"stream":"{stream}","phase":"{phase}","records":['


def data(sub_id: str, stream: str, phase: str, items: list[str]) -> str:
    return data_head(sub_id, stream, phase) + ",".join(items) + "]}"


def overflow(dropped: int, total: int) -> str:
    return _dump({"type": "overflow", "dropped": dropped, "dropped_total": total})


def heartbeat(now_iso: str, latest: dict[str, str]) -> str:
    return _dump({"type": "heartbeat", "now": now_iso, "latest": latest})


def pong(ping_id: str | None) -> str:
    return _dump({"type": "pong", "id": ping_id})


def error(code: str, detail: str, sub_id: str | None = None) -> str:
    return _dump({"type": "error", "code": code, "detail": detail, "id": sub_id})
