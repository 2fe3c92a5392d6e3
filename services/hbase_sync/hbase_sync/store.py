"""The HBase edge: idempotent table creation and batch writes through happybase (Thrift1).

* raw, late, deadletters: one ``mutateRows`` per table and flush (a happybase batch). Keys are deterministic, so
  writing a row again leaves it as it was.
* aggregates: an upsert that keeps the highest revision. The flush keeps the highest revision per key, reads the
  stored rows in one call, and writes each newer one with Thrift ``checkAndPut`` against the exact stored cell (or its
  absence): a replayed or out-of-order lower revision never replaces a higher one, even with two writers racing.

Any Thrift or socket failure drops the connection and raises ServiceUnavailable; the next call reconnects.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import happybase
from thriftpy2.thrift import TException

from hbase_sync.mapping import MESSAGE, Row, latest_per_key, stored_revision
from iotcommon.errors import ServiceUnavailable
from iotcommon.hbase_layout import TABLES, families, table_name, ttl_seconds

log = logging.getLogger("hbase_sync.store")

_FAILURES = (OSError, EOFError, TException)
_CAS_ATTEMPTS = 8
_MAX_ROWS_PER_CALL = 10_000
# Fewest rows worth a shard of their own: every shard is one more Thrift call, which costs CPU in the worker, in
# Thrift and in HBase. At 100-row batches one call instead of two halves cost 3-7 us less worker CPU and 2-8 us less
# Thrift CPU per row (docs/performance.md); parallel shards pay off only for large batches (a backlog).
MIN_SHARD_ROWS = 500


@dataclass
class WriteResult:
    written: Counter[str] = field(default_factory=Counter)  # rows put, per table
    stale: int = 0  # aggregates skipped because the table already holds that revision or a higher one


class HBaseStore:
    """Writes rows into one pipeline's tables. Not thread-safe: one per worker thread."""

    def __init__(
        self,
        host: str,
        port: int,
        table_prefix: str,
        *,
        timeout_ms: int = 20_000,
        transport: str = "buffered",
        protocol: str = "binary",
        ttls: Mapping[str, int] | None = None,
        create_tables: bool = True,
        idle_reconnect_s: float = 45.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host, self.port, self.table_prefix = host, port, table_prefix
        self.timeout_ms = timeout_ms
        self.transport, self.protocol = transport, protocol
        self.ttls = dict(ttls or {})
        self.create_tables = create_tables
        self.idle_reconnect_s = idle_reconnect_s  # the Thrift server closes sockets idle for 60 s
        self._clock = clock
        self._conn: happybase.Connection | None = None
        self._last_used = 0.0
        thrift_types = importlib.import_module("Hbase_thrift")  # loaded by happybase
        self._mutation, self._batch_mutation = thrift_types.Mutation, thrift_types.BatchMutation

    @property
    def where(self) -> str:
        return f"HBase Thrift {self.host}:{self.port}"

    # -- connection -------------------------------------------------------------------------------------------------

    def _connection(self) -> happybase.Connection:
        now = self._clock()
        if self._conn is not None and now - self._last_used > self.idle_reconnect_s:
            log.debug("connection idle for %.0f s: reconnecting before use", now - self._last_used)
            self._drop()
        if self._conn is None:
            conn = happybase.Connection(self.host, self.port, timeout=self.timeout_ms, autoconnect=False,
                                        table_prefix=self.table_prefix, transport=self.transport,
                                        protocol=self.protocol)
            conn.open()
            self._conn = conn
            try:
                self._ensure_tables(conn)
            except BaseException:
                self._drop()
                raise
        self._last_used = now
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(*_FAILURES):
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self._drop()

    def check(self) -> None:
        """Reach HBase (connect, ensure the tables) or raise ServiceUnavailable."""
        try:
            self._connection()
        except _FAILURES as exc:
            self._drop()
            raise ServiceUnavailable(f"{self.where}: {exc!r}") from exc

    # -- tables -----------------------------------------------------------------------------------------------------

    def ensure_tables(self) -> list[str]:
        """Create the missing tables (never drop or alter one). Returns the short names created."""
        try:
            return self._ensure_tables(self._connection())
        except _FAILURES as exc:
            self._drop()
            raise ServiceUnavailable(f"{self.where}: {exc!r}") from exc

    def _ensure_tables(self, conn: happybase.Connection) -> list[str]:
        existing = {bytes(t).decode() for t in conn.tables()}  # without the prefix (happybase strips it)
        missing = [t for t in TABLES if t not in existing]
        if missing and not self.create_tables:
            msg = f"{self.where}: missing tables {', '.join(table_name(self.table_prefix, t) for t in missing)}"
            raise ServiceUnavailable(msg + " (table creation is off)")
        created: list[str] = []
        for table in missing:
            try:
                conn.create_table(table, families(self.ttls.get(table, 0)))
                created.append(table)
                log.info("created table %s (TTL %s)", table_name(self.table_prefix, table),
                         f"{self.ttls.get(table)} s" if self.ttls.get(table) else "forever")
            except TException as exc:
                if type(exc).__name__ != "AlreadyExists":  # another worker created it first: fine
                    raise
        for table in TABLES:
            if table in created or table not in self.ttls:
                continue
            ttl = ttl_seconds(conn.table(table).families().get(b"d", {}))
            if ttl != self.ttls[table]:
                log.warning("table %s exists with TTL %s but the setting says %s; existing tables are never altered "
                            "(Thrift1 cannot): change it with the HBase shell if wanted",
                            table_name(self.table_prefix, table), ttl or "forever", self.ttls[table] or "forever")
        return created

    # -- writes -----------------------------------------------------------------------------------------------------

    def write(self, rows: Iterable[Row]) -> WriteResult:
        """Write every row or raise ServiceUnavailable (then some may be written: rewriting them is harmless)."""
        by_table: dict[str, list[Row]] = {}
        for row in rows:
            by_table.setdefault(row.table, []).append(row)
        result = WriteResult()
        try:
            conn = self._connection()
            for table, table_rows in by_table.items():
                if table == "aggregates":
                    written, stale = self._upsert_aggregates(conn, table_rows)
                    result.written[table] += written
                    result.stale += stale
                else:
                    self._put_all(conn, table, table_rows)
                    result.written[table] += len(table_rows)
        except _FAILURES as exc:
            self._drop()
            raise ServiceUnavailable(f"{self.where}: {exc!r}") from exc
        self._last_used = self._clock()
        return result

    def _put_all(self, conn: happybase.Connection, table: str, rows: list[Row]) -> None:
        """Thrift ``mutateRows`` calls of at most ``_MAX_ROWS_PER_CALL`` rows: what a happybase batch sends, built
        directly (happybase's batch costs ~1 us more per row). Every mutation keeps ``writeToWAL`` (Thrift's
        default, True): the write is in HBase's WAL before the call returns, so committing the offsets after it is
        safe."""
        name = table_name(self.table_prefix, table).encode()
        mutation, batch_mutation = self._mutation, self._batch_mutation
        for start in range(0, len(rows), _MAX_ROWS_PER_CALL):
            batch = [batch_mutation(row=row.key, mutations=[mutation(isDelete=False, column=column, value=value)
                                                            for column, value in row.cells.items()])
                     for row in rows[start:start + _MAX_ROWS_PER_CALL]]
            conn.client.mutateRows(name, batch, {})

    def _upsert_aggregates(self, conn: happybase.Connection, rows: list[Row]) -> tuple[int, int]:
        latest = latest_per_key(rows)
        stale = len(rows) - len(latest)
        written = 0
        table = conn.table("aggregates")
        full_name = table_name(self.table_prefix, "aggregates").encode()
        pending = latest
        for _ in range(_CAS_ATTEMPTS):
            stored: dict[bytes, bytes] = {
                key: data[MESSAGE] for key, data in table.rows(list(pending), columns=[MESSAGE]) if MESSAGE in data
            }
            lost: dict[bytes, Row] = {}
            for key, row in pending.items():
                current = stored.get(key)
                if current is not None and stored_revision(current) >= row.revision:
                    stale += 1
                    continue
                mutation = self._mutation(isDelete=False, column=MESSAGE, value=row.cells[MESSAGE])
                if conn.client.checkAndPut(full_name, key, MESSAGE, current, mutation, {}):
                    written += 1
                else:  # someone else changed the row since we read it: read again and decide again
                    lost[key] = row
            if not lost:
                return written, stale
            pending = lost
        msg = f"aggregate upsert kept losing the race for {len(pending)} row(s)"
        raise ServiceUnavailable(msg)

    # -- reads (tests, tools) ---------------------------------------------------------------------------------------

    def scan(self, table: str) -> dict[bytes, dict[bytes, Any]]:
        """Every row of one table (small tables only: tests and tools)."""
        try:
            return dict(self._connection().table(table).scan())
        except _FAILURES as exc:
            self._drop()
            raise ServiceUnavailable(f"{self.where}: {exc!r}") from exc


class ShardedStore:
    """One batch written over several Thrift connections at once: the rows are split into up to ``len(stores)``
    shards of at least ``min_shard_rows`` rows, written in parallel (HBase serves them on different handler threads);
    a smaller batch is one call on the first store. Aggregates all go to the first shard, so every revision of a key
    is decided in one place. A failure of any shard fails the whole write (rewriting the shards that did succeed is
    harmless)."""

    def __init__(self, stores: list[HBaseStore], min_shard_rows: int = MIN_SHARD_ROWS) -> None:
        if not stores:
            msg = "at least one store"
            raise ValueError(msg)
        if min_shard_rows < 1:
            msg = "min_shard_rows must be at least 1"
            raise ValueError(msg)
        self.stores = stores
        self.min_shard_rows = min_shard_rows
        self._pool = ThreadPoolExecutor(len(stores) - 1, thread_name_prefix="hbase-shard") if len(stores) > 1 else None

    def check(self) -> None:
        for store in self.stores:
            store.check()

    def shards_for(self, rows: int) -> int:
        """How many shards a batch of ``rows`` rows is written in."""
        return max(1, min(len(self.stores), rows // self.min_shard_rows))

    def write(self, rows: Sequence[Row]) -> WriteResult:
        n = self.shards_for(len(rows))
        if self._pool is None or n == 1:
            return self.stores[0].write(rows)
        aggregates = [r for r in rows if r.table == "aggregates"]
        plain = [r for r in rows if r.table != "aggregates"] if aggregates else list(rows)
        shards = [plain[i::n] for i in range(n)]
        shards[0].extend(aggregates)
        futures = [self._pool.submit(store.write, shard) for store, shard in zip(self.stores[1:n], shards[1:],
                                                                                  strict=True) if shard]
        errors: list[ServiceUnavailable] = []
        result = WriteResult()
        try:
            results = [self.stores[0].write(shards[0])]
        except ServiceUnavailable as exc:
            errors.append(exc)
            results = []
        for future in futures:
            try:
                results.append(future.result())
            except ServiceUnavailable as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
        for part in results:
            result.written.update(part.written)
            result.stale += part.stale
        return result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for store in self.stores:
            store.close()
