"""HBase tables of a pipeline (names from iotcommon.hbase_layout): a pure plan and the happybase (Thrift1) edge.

Missing tables are created with the one column family ``d``. Thrift1 cannot alter a column family, so a table whose
TTL or max versions differ from the spec is reported (HBaseTablesReady=False reason NotSupported), never dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iot_operator.spec import TableSpec
from iotcommon.errors import ServiceUnavailable
from iotcommon.hbase_layout import FAMILY, families, ttl_seconds


@dataclass(frozen=True)
class TableState:
    name: str
    ttl_seconds: int  # 0 = forever
    max_versions: int


@dataclass
class TablePlan:
    create: list[TableSpec] = field(default_factory=list)
    drift: list[tuple[TableSpec, str]] = field(default_factory=list)


def plan(desired: Sequence[TableSpec], actual: Mapping[str, TableState]) -> TablePlan:
    out = TablePlan()
    for t in desired:
        cur = actual.get(t.name)
        if cur is None:
            out.create.append(t)
            continue
        diffs = []
        if cur.ttl_seconds != t.ttl_seconds:
            diffs.append(f"TTL {cur.ttl_seconds or 'forever'} s (spec: {t.ttl_seconds or 'forever'})")
        if cur.max_versions != t.max_versions:
            diffs.append(f"max versions {cur.max_versions} (spec: {t.max_versions})")
        if diffs:
            out.drift.append((t, f"table {t.name} has {', '.join(diffs)}; Thrift1 cannot alter column families, "
                                 f"change it with the HBase shell"))
    return out


def table_status(desired: Sequence[TableSpec], existing: Sequence[str], problems: Mapping[str, str]
                 ) -> list[dict[str, Any]]:
    rows = []
    for t in desired:
        ready = t.name in existing and t.name not in problems
        row: dict[str, Any] = {"name": t.key, "tableName": t.name, "ready": ready}
        if t.name in problems:
            row["message"] = problems[t.name]
        rows.append(row)
    return rows


class HBaseAdmin:
    """happybase edge; every call raises ServiceUnavailable when the Thrift server cannot be reached."""

    def __init__(self, host: str, port: int, transport: str, protocol: str, timeout_s: float) -> None:
        import happybase

        self.where = f"HBase Thrift at {host}:{port}"
        self.conn = happybase.Connection(host, port, timeout=int(timeout_s * 1000), transport=transport,
                                         protocol=protocol, autoconnect=False)
        self._guard(self.conn.open)

    def _guard(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        from thriftpy2.transport import TTransportException

        try:
            return fn(*args, **kwargs)
        except (TTransportException, OSError) as exc:
            raise ServiceUnavailable(f"{self.where} is unreachable: {exc}") from exc

    def close(self) -> None:
        self.conn.close()

    def existing(self) -> list[str]:
        return [n.decode() if isinstance(n, bytes) else str(n) for n in self._guard(self.conn.tables)]

    def observe(self, desired: Sequence[TableSpec]) -> dict[str, TableState]:
        names = set(self.existing())
        out = {}
        for t in desired:
            if t.name not in names:
                continue
            found = self._guard(self.conn.table(t.name).families)
            fam = found.get(FAMILY.encode()) or found.get(FAMILY) or {}
            out[t.name] = TableState(t.name, ttl_seconds(fam), int(fam.get("max_versions", 1)))
        return out

    def create(self, tables: Sequence[TableSpec]) -> tuple[list[str], dict[str, str]]:
        """Create tables; an existing one (a race with another writer) counts as done. Returns (done, errors)."""
        import happybase  # noqa: F401  (loads the Hbase_thrift module)
        from Hbase_thrift import AlreadyExists  # type: ignore[import-not-found]
        from Hbase_thrift import IOError as HBaseIOError

        done, errors = [], {}
        for t in tables:
            try:
                self._guard(self.conn.create_table, t.name, families(t.ttl_seconds, t.max_versions, t.compression))
                done.append(f"created table {t.name}")
            except AlreadyExists:
                continue
            except HBaseIOError as exc:
                errors[t.name] = f"creating table {t.name} failed: {getattr(exc, 'message', exc)}"
        return done, errors

    def delete(self, names: Sequence[str]) -> list[str]:
        present = set(self.existing())
        deleted = []
        for name in names:
            if name in present:
                self._guard(self.conn.delete_table, name, disable=True)
                deleted.append(name)
        return deleted
