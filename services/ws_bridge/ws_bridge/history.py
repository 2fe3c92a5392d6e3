"""History from HBase (happybase over Thrift1), through iotcommon.hbase_layout only.

Every query scans each wanted series (site x sensor, or site x aggregate name) in *reverse* key order from the end of
the time range, so the newest rows come first and a per-series limit keeps the newest. The merged result is sorted by
event time, ascending, and cut to the newest ``limit`` rows (``truncated`` says whether rows were left out).

Dead letters are keyed by source topic/partition/offset, not by site or time, so their table is scanned in key order
up to ``Query.scan_cap`` rows (``truncated`` when the cap is reached) and filtered by rejection time.

Every query also stops with ``TooLarge`` once the stored messages it has read exceed ``Query.max_bytes``, so one
request never holds more than that in memory.

An aggregate's day is the local day of its site: the zone of each site comes from ``iotcommon.zones.SiteZones``.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import happybase
from thriftpy2.thrift import TException
from thriftpy2.transport import TTransportException

from iotcommon import hbase_layout as layout
from iotcommon.days import day_of_ms
from iotcommon.errors import IoTError, MessageError, ServiceUnavailable
from iotcommon.messages import SITE_PATTERN as SITE
from iotcommon.sensors import SENSORS, aggregate_names
from iotcommon.zones import SiteZones
from ws_bridge.queries import Query
from ws_bridge.records import MAX_MS, Record, decode, table_of

log = logging.getLogger(__name__)

class TooLarge(IoTError):
    """A query read more than its ``max_bytes`` of stored messages."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the rows asked for exceed {max_bytes} bytes; narrow the time range, the sites or the limit")
        self.max_bytes = max_bytes


@dataclass(frozen=True, slots=True)
class Result:
    records: list[Record]
    truncated: bool
    skipped: int = 0  # stored rows that are not valid messages


class HistorySource(Protocol):
    def query(self, query: Query) -> Result: ...

    def sites(self) -> list[str]: ...

    def close(self) -> None: ...


_FAILURES = (TException, TTransportException, OSError, socket.timeout)


class HBaseHistory:
    """Blocking reads; the app calls them in worker threads."""

    def __init__(self, host: str, port: int, table_prefix: str, zones: SiteZones, *, pool_size: int = 4,
                 timeout_ms: int = 20_000) -> None:
        self._host, self._port = host, port
        self._prefix = table_prefix
        self._zones = zones
        self._pool_size = pool_size
        self._timeout_ms = timeout_ms
        self._pool: happybase.ConnectionPool | None = None
        self._sites_cache: tuple[float, list[str]] = (0.0, [])

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        try:
            if self._pool is None:
                self._pool = happybase.ConnectionPool(self._pool_size, host=self._host, port=self._port,
                                                      timeout=self._timeout_ms, autoconnect=True)
            with self._pool.connection() as conn:
                yield conn
        except _FAILURES as exc:
            msg = f"HBase Thrift at {self._host}:{self._port} failed: {exc!r}"
            raise ServiceUnavailable(msg) from exc

    def close(self) -> None:
        self._pool = None

    def query(self, query: Query) -> Result:
        if query.stream == "deadletters":
            return self._dead_letters(query)
        lo = query.from_ms if query.from_ms is not None else 0
        hi = min(query.to_ms if query.to_ms is not None else MAX_MS, MAX_MS)
        per_series = min(query.last, query.limit + 1) if query.last is not None else query.limit + 1
        ranges: list[tuple[bytes, bytes]] = []
        sensors = query.sensors if query.sensors is not None else tuple(SENSORS)
        for site in query.sites:
            tz = self._zones.zone(site)
            for sensor in sensors:
                if query.stream == "aggregates":
                    # a reverse scan's stop row is exclusive and aggregate keys end with the day: start a day early
                    from_day = (day_of_ms(lo, tz) - timedelta(days=1)).isoformat() if lo > 0 else "0000"
                    to_day = (day_of_ms(hi, tz) + timedelta(days=1)).isoformat() if hi < MAX_MS else "9999"
                    ranges.extend(layout.aggregate_range(site, name, from_day, to_day)
                                  for name in aggregate_names(sensor))
                else:
                    ranges.append(layout.reading_range(site, sensor, lo, hi))
        records: list[Record] = []
        skipped = 0
        truncated = False
        budget = _Budget(query.max_bytes)
        with self._connection() as conn:
            table = conn.table(layout.table_name(self._prefix, table_of(query.stream)))
            for start, stop in ranges:
                got = 0
                # closing(): a scan left early (TooLarge) closes its server-side scanner before the connection is reused
                with closing(table.scan(row_start=stop, row_stop=start, reverse=True,
                                        columns=[layout.MESSAGE_COLUMN], limit=per_series)) as rows:
                    for _key, row in rows:
                        got += 1
                        budget.take(row)
                        record = self._decode(query.stream, row)
                        if record is None:
                            skipped += 1
                        elif lo <= record.event_ms <= hi:
                            records.append(record)
                if query.last is None and got >= per_series:
                    truncated = True
        return _finish(records, query.limit, truncated, skipped)

    def _dead_letters(self, query: Query) -> Result:
        lo = query.from_ms if query.from_ms is not None else 0
        hi = query.to_ms if query.to_ms is not None else MAX_MS
        records: list[Record] = []
        skipped = 0
        scanned = 0
        budget = _Budget(query.max_bytes)
        with self._connection() as conn:
            table = conn.table(layout.table_name(self._prefix, "deadletters"))
            with closing(table.scan(columns=[layout.MESSAGE_COLUMN], limit=query.scan_cap)) as rows:
                for _key, row in rows:
                    scanned += 1
                    budget.take(row)
                    record = self._decode("deadletters", row)
                    if record is None:
                        skipped += 1
                    elif lo <= record.event_ms <= hi and _wanted(record, query):
                        records.append(record)
        limit = min(query.limit, query.last) if query.last is not None else query.limit
        return _finish(records, limit, scanned >= query.scan_cap, skipped)

    def _decode(self, stream: str, row: dict[bytes, bytes]) -> Record | None:
        try:
            return decode(stream, row.get(layout.MESSAGE_COLUMN))
        except MessageError as exc:
            log.warning("skipping a stored %s row that is not a valid message: %s", stream, exc)
            return None

    def sites(self) -> list[str]:
        """Sites that have aggregates or readings stored (cached for 30 s)."""
        at, cached = self._sites_cache
        if time.monotonic() - at < 30 and cached:
            return cached
        found: set[str] = set()
        with self._connection() as conn:
            for table_kind in ("aggregates", "raw"):
                table = conn.table(layout.table_name(self._prefix, table_kind))
                # one row per salt bucket and site: jump past each site's rows with a fresh scan
                for bucket in range(layout.SALT_BUCKETS):
                    start = f"{bucket:02x}{layout.SEP}".encode()
                    stop = f"{bucket:02x}{layout.SEP}\xff".encode("latin-1")
                    while True:
                        rows = list(table.scan(row_start=start, row_stop=stop, limit=1,
                                               filter=b"KeyOnlyFilter() AND FirstKeyOnlyFilter()"))
                        if not rows:
                            break
                        parts = rows[0][0].split(layout.SEP.encode())
                        site = parts[1].decode("utf-8", "replace")
                        if SITE.fullmatch(site):
                            found.add(site)
                        start = parts[0] + layout.SEP.encode() + parts[1] + b"|\xff"
                if found:
                    break
        result = sorted(found)
        self._sites_cache = (time.monotonic(), result)
        return result


class _Budget:
    """Counts the bytes of stored messages a query has read; TooLarge past the limit."""

    def __init__(self, max_bytes: int) -> None:
        self.left = max_bytes
        self.max_bytes = max_bytes

    def take(self, row: dict[bytes, bytes]) -> None:
        self.left -= len(row.get(layout.MESSAGE_COLUMN) or b"")
        if self.left < 0:
            raise TooLarge(self.max_bytes)


def _wanted(record: Record, query: Query) -> bool:
    if record.site is None:
        return True
    if query.sites and record.site not in query.sites:
        return False
    return query.sensors is None or record.sensor in query.sensors


def _finish(records: list[Record], limit: int, truncated: bool, skipped: int) -> Result:
    records.sort(key=lambda r: (r.event_ms, r.ident))
    if len(records) > limit:
        return Result(records[-limit:], True, skipped)
    return Result(records, truncated, skipped)
