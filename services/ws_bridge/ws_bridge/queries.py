"""Pure: HTTP range-query parameters -> a history Query, within the bridge's bounds.

``GET /api/v1/{raw|aggregates|late|deadletters}?site=S&sensor=TH1&from=..&to=..&limit=N`` with

- ``site``: one or more (repeat the parameter or separate with commas); required except for deadletters; at most
  ``Bounds.sites`` values;
- ``sensor``: zero or more (default every sensor); ``kind``: aggregates only, AggDay|AggDayDiff|AggDayRest|AggDayMov;
- ``from``/``to``: epoch milliseconds (what Grafana's ``${__from}``/``${__to}`` give) or RFC 3339 instants, between
  1970-01-01 and ``MAX_MS``; when both are given, at most ``Bounds.range_ms`` apart;
- ``last``: the newest N rows of each series (the default when neither ``from`` nor ``to`` is given, with N = limit):
  this follows simulated time without knowing it;
- ``limit``: most rows returned (default 1000, at most ``Bounds.limit``); the newest rows are kept.

A malformed parameter raises ``QueryError`` (400 ``bad-query``); a parameter beyond a bound raises ``BoundExceeded``
(400 ``bound-exceeded``, naming the bound); an unknown stream is a 404.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from iotcommon.days import ms_to_ts, ts_to_ms
from iotcommon.errors import IoTError
from iotcommon.messages import SITE_PATTERN
from iotcommon.sensors import AGGREGATE_KINDS, SENSORS
from ws_bridge.records import MAX_MS, STREAMS

DEFAULT_LIMIT = 1000
_MS = re.compile(r"-?[0-9]{1,19}")
_COUNT = re.compile(r"[0-9]{1,12}")
DAY_MS = 86_400_000
DEADLETTER_SCAN_CAP = 20_000
MAX_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class Query:
    """What one history request reads (``ws_bridge.history`` runs it against HBase)."""

    stream: str
    sites: tuple[str, ...]  # required except for deadletters
    sensors: tuple[str, ...] | None = None  # None = every sensor
    from_ms: int | None = None
    to_ms: int | None = None
    last: int | None = None  # newest rows per series
    limit: int = 1000
    max_bytes: int = MAX_BYTES  # most bytes of stored messages read (TooLarge beyond)
    scan_cap: int = DEADLETTER_SCAN_CAP  # most dead-letter rows scanned


@dataclass(frozen=True, slots=True)
class Bounds:
    """What one query may ask for (from BridgeConfig)."""

    sites: int = 50
    limit: int = 20_000
    range_ms: int = 400 * DAY_MS
    bytes: int = 16 << 20
    deadletter_scan: int = 20_000


class QueryError(IoTError):
    def __init__(self, detail: str, status: int = 400, error: str = "bad-query") -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.error = error
        self.bound: str | None = None


class BoundExceeded(QueryError):
    """A parameter is well-formed but beyond one of the bridge's bounds; ``bound`` names which."""

    def __init__(self, bound: str, detail: str) -> None:
        super().__init__(detail, 400, "bound-exceeded")
        self.bound = bound


class MultiParams(Protocol):
    def getlist(self, key: str) -> list[str]: ...


def _list(params: MultiParams, key: str) -> list[str]:
    return [part.strip() for value in params.getlist(key) for part in value.split(",") if part.strip()]


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _instant(value: str | None, key: str) -> int | None:
    if value is None or value == "":
        return None
    if _MS.fullmatch(value):
        ms = int(value)
    else:
        try:
            ms = ts_to_ms(value)
        except (ValueError, OverflowError):
            raise QueryError(f"'{key}' must be epoch milliseconds or an RFC 3339 instant, got {value[:64]!r}") from None
    if not 0 <= ms <= MAX_MS:
        raise QueryError(f"'{key}' must lie between {ms_to_ts(0)} (0) and {ms_to_ts(MAX_MS)} ({MAX_MS})")
    return ms


def _count(value: str | None, key: str, bound: int, setting: str) -> int | None:
    if value is None or value == "":
        return None
    if not _COUNT.fullmatch(value) or int(value) < 1:
        raise QueryError(f"'{key}' must be a positive integer, got {value[:64]!r}")
    if int(value) > bound:
        raise BoundExceeded(key, f"'{key}' is {int(value)}, over the bound {bound} ({setting})")
    return int(value)


def parse_query(stream: str, params: MultiParams, bounds: Bounds) -> tuple[Query, frozenset[str] | None]:
    """(Query, aggregate kinds wanted or None). Raises QueryError / BoundExceeded (404 for an unknown stream)."""
    if stream not in STREAMS:
        raise QueryError(f"unknown stream {stream[:64]!r}; streams are {', '.join(STREAMS)}", 404, "not-found")
    single: Mapping[str, str] = {k: (v[-1] if v else "") for k in ("from", "to", "limit", "last")
                                 for v in [params.getlist(k)]}
    sites = _list(params, "site")
    if len(sites) > bounds.sites:
        raise BoundExceeded("sites", f"{len(sites)} sites, over the bound {bounds.sites} per request "
                            "(IOTPIPE_BRIDGE_MAX_SITES)")
    for site in sites:
        if not SITE_PATTERN.fullmatch(site):
            raise QueryError(f"bad site {site[:64]!r}")
    if not sites and stream != "deadletters":
        raise QueryError("'site' is required (rows are keyed by site)")
    sensors = _unique(_list(params, "sensor"))
    for sensor in sensors:
        if sensor not in SENSORS:
            raise QueryError(f"unknown sensor {sensor[:64]!r}; sensors are {', '.join(SENSORS)}")
    kinds = _list(params, "kind")
    for kind in kinds:
        if kind not in AGGREGATE_KINDS:
            raise QueryError(f"unknown kind {kind[:64]!r}; kinds are {', '.join(AGGREGATE_KINDS)}")
    if kinds and stream != "aggregates":
        raise QueryError("'kind' applies to the aggregates stream only")
    from_ms, to_ms = _instant(single.get("from"), "from"), _instant(single.get("to"), "to")
    if from_ms is not None and to_ms is not None:
        if from_ms > to_ms:
            raise QueryError("'from' is after 'to'")
        if to_ms - from_ms > bounds.range_ms:
            raise BoundExceeded("range", f"'from'..'to' spans {(to_ms - from_ms) / DAY_MS:.1f} days, over the bound "
                                f"{bounds.range_ms / DAY_MS:g} days (IOTPIPE_BRIDGE_MAX_RANGE_DAYS)")
    limit = _count(single.get("limit"), "limit", bounds.limit, "IOTPIPE_BRIDGE_HISTORY_LIMIT") or DEFAULT_LIMIT
    limit = min(limit, bounds.limit)
    last = _count(single.get("last"), "last", bounds.limit, "IOTPIPE_BRIDGE_HISTORY_LIMIT")
    if last is None and from_ms is None and to_ms is None:
        last = limit
    query = Query(stream, tuple(_unique(sites)), tuple(sensors) if sensors else None, from_ms=from_ms, to_ms=to_ms,
                  last=last, limit=limit, max_bytes=bounds.bytes, scan_cap=bounds.deadletter_scan)
    return query, frozenset(kinds) if kinds else None
