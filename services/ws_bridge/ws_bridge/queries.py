"""Pure: HTTP range-query parameters -> a history Query.

``GET /api/v1/{raw|aggregates|late|deadletters}?site=S&sensor=TH1&from=..&to=..&limit=N`` with

- ``site``: one or more (repeat the parameter or separate with commas); required except for deadletters;
- ``sensor``: zero or more (default every sensor); ``kind``: aggregates only, AggDay|AggDayDiff|AggDayRest|AggDayMov;
- ``from``/``to``: epoch milliseconds (what Grafana's ``${__from}``/``${__to}`` give) or RFC 3339 instants;
- ``last``: the newest N rows of each series (the default when neither ``from`` nor ``to`` is given, with N = limit):
  this follows simulated time without knowing it;
- ``limit``: most rows returned (default 1000, at most the bridge's history limit); the newest rows are kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from iotcommon.sensors import SENSORS
from ws_bridge.history import Query
from ws_bridge.records import STREAMS, iso_to_ms

DEFAULT_LIMIT = 1000
KINDS = ("AggDay", "AggDayDiff", "AggDayRest", "AggDayMov")
_SITE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class QueryError(ValueError):
    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.status = status


class MultiParams(Protocol):
    def getlist(self, key: str) -> list[str]: ...


def _list(params: MultiParams, key: str) -> list[str]:
    return [part.strip() for value in params.getlist(key) for part in value.split(",") if part.strip()]


def _instant(value: str | None, key: str) -> int | None:
    if value is None or value == "":
        return None
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    try:
        return iso_to_ms(value)
    except ValueError:
        raise QueryError(f"'{key}' must be epoch milliseconds or an RFC 3339 instant, got {value!r}") from None


def _positive(value: str | None, key: str) -> int | None:
    if value is None or value == "":
        return None
    if not value.isdigit() or int(value) < 1:
        raise QueryError(f"'{key}' must be a positive integer, got {value!r}")
    return int(value)


def parse_query(stream: str, params: MultiParams, max_limit: int) -> tuple[Query, frozenset[str] | None]:
    """(Query, aggregate kinds wanted or None). Raises QueryError (404 for an unknown stream, else 400)."""
    if stream not in STREAMS:
        raise QueryError(f"unknown stream {stream!r}; streams are {', '.join(STREAMS)}", 404)
    single: Mapping[str, str] = {k: (v[-1] if v else "") for k in ("from", "to", "limit", "last")
                                 for v in [params.getlist(k)]}
    sites = _list(params, "site")
    for site in sites:
        if not _SITE.match(site):
            raise QueryError(f"bad site {site!r}")
    if not sites and stream != "deadletters":
        raise QueryError("'site' is required (rows are keyed by site)")
    sensors = _list(params, "sensor")
    for sensor in sensors:
        if sensor not in SENSORS:
            raise QueryError(f"unknown sensor {sensor!r}; sensors are {', '.join(SENSORS)}")
    kinds = _list(params, "kind")
    for kind in kinds:
        if kind not in KINDS:
            raise QueryError(f"unknown kind {kind!r}; kinds are {', '.join(KINDS)}")
    if kinds and stream != "aggregates":
        raise QueryError("'kind' applies to the aggregates stream only")
    from_ms, to_ms = _instant(single.get("from"), "from"), _instant(single.get("to"), "to")
    if from_ms is not None and to_ms is not None and from_ms > to_ms:
        raise QueryError("'from' is after 'to'")
    limit = min(_positive(single.get("limit"), "limit") or DEFAULT_LIMIT, max_limit)
    last = _positive(single.get("last"), "last")
    if last is None and from_ms is None and to_ms is None:
        last = limit
    query = Query(stream, tuple(sites), tuple(sensors) if sensors else None, from_ms=from_ms, to_ms=to_ms,
                  last=last, limit=limit)
    return query, frozenset(kinds) if kinds else None
