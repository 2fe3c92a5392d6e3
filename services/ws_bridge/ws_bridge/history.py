"""History from HBase (happybase over Thrift1), through iotcommon.hbase_layout only.

Every query scans each wanted series (site x sensor, or site x aggregate name) in *reverse* key order from the end of
the time range, so the newest rows come first and a per-series limit keeps the newest. The merged result is sorted by
event time, ascending, and cut to the newest ``limit`` rows (``truncated`` says whether rows were left out).

Dead letters are keyed by source topic/partition/offset, not by site or time, so their table is scanned whole (up to
``DEADLETTER_SCAN_CAP`` rows) and filtered by rejection time.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import happybase
from thriftpy2.thrift import TException
from thriftpy2.transport import TTransportException

from iotcommon import hbase_layout as layout
from iotcommon.days import day_of_ms, zone
from iotcommon.errors import MessageError, ServiceUnavailable
from iotcommon.sensors import SENSORS
from ws_bridge.records import Record, aggregate_names, decode, table_of

log = logging.getLogger(__name__)

MAX_MS = 9_999_999_999_998  # 13 digits, what reading_range can express
DEADLETTER_SCAN_CAP = 100_000


@dataclass(frozen=True, slots=True)
class Query:
    stream: str
    sites: tuple[str, ...]  # required except for deadletters
    sensors: tuple[str, ...] | None = None  # None = every sensor
    from_ms: int | None = None
    to_ms: int | None = None
    last: int | None = None  # newest rows per series
    limit: int = 1000


@dataclass(frozen=True, slots=True)
class Result:
    records: list[Record]
    truncated: bool
    skipped: int = 0  # stored rows that are not valid messages


class HistorySource(Protocol):
    def query(self, query: Query) -> Result: ...

    def sites(self) -> list[str]: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


_FAILURES = (TException, TTransportException, OSError, socket.timeout)


class HBaseHistory:
    """Blocking reads; the app calls them in worker threads."""

    def __init__(self, host: str, port: int, table_prefix: str, site_tz: str, *, pool_size: int = 4,
                 timeout_ms: int = 20_000) -> None:
        self._host, self._port = host, port
        self._prefix = table_prefix
        self._tz = zone(site_tz)
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

    def ping(self) -> None:
        with self._connection() as conn:
            conn.tables()

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
            for sensor in sensors:
                if query.stream == "aggregates":
                    # a reverse scan's stop row is exclusive and aggregate keys end with the day: start a day early
                    from_day = (day_of_ms(lo, self._tz) - timedelta(days=1)).isoformat() if lo > 0 else "0000"
                    to_day = (day_of_ms(hi, self._tz) + timedelta(days=1)).isoformat() if hi < MAX_MS else "9999"
                    ranges.extend(layout.aggregate_range(site, name, from_day, to_day)
                                  for name in aggregate_names(sensor))
                else:
                    ranges.append(layout.reading_range(site, sensor, lo, hi))
        records: list[Record] = []
        skipped = 0
        truncated = False
        with self._connection() as conn:
            table = conn.table(layout.table_name(self._prefix, table_of(query.stream)))
            for start, stop in ranges:
                got = 0
                for _key, row in table.scan(row_start=stop, row_stop=start, reverse=True,
                                            columns=[layout.MESSAGE_COLUMN], limit=per_series):
                    got += 1
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
        with self._connection() as conn:
            table = conn.table(layout.table_name(self._prefix, "deadletters"))
            for _key, row in table.scan(columns=[layout.MESSAGE_COLUMN], limit=DEADLETTER_SCAN_CAP):
                record = self._decode("deadletters", row)
                if record is None:
                    skipped += 1
                elif lo <= record.event_ms <= hi and _wanted(record, query):
                    records.append(record)
        limit = min(query.limit, query.last) if query.last is not None else query.limit
        return _finish(records, limit, False, skipped)

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
                        site = parts[1].decode()
                        found.add(site)
                        start = parts[0] + layout.SEP.encode() + parts[1] + b"|\xff"
                if found:
                    break
        result = sorted(found)
        self._sites_cache = (time.monotonic(), result)
        return result


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
