"""ShardedStore splits one batch over several stores (FAKE stores here; the real store is exercised by the tests
against HBase): every row written once, all aggregates in one shard, any shard failure fails the whole write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sync_fakes import FakeStore

from hbase_sync.mapping import MESSAGE, Row
from hbase_sync.store import ShardedStore, WriteResult
from iotcommon.errors import ServiceUnavailable


def rows(n: int, table: str = "raw") -> list[Row]:
    return [Row(table, f"{table}{i}".encode(), {MESSAGE: b"{}"}) for i in range(n)]


def agg(key: bytes, revision: int) -> Row:
    return Row("aggregates", key, {MESSAGE: b'{"revision": %d}' % revision}, revision=revision)


def sharded(fakes: Sequence[FakeStore]) -> ShardedStore:
    return ShardedStore(list(fakes))  # type: ignore[arg-type]


def test_rows_are_spread_over_the_shards_and_each_is_written_once() -> None:
    fakes = [FakeStore() for _ in range(3)]
    store = sharded(fakes)
    result = store.write(rows(10) + rows(4, "late"))
    assert result.written == {"raw": 10, "late": 4}
    assert all(f.calls == 1 for f in fakes)
    keys = [k for f in fakes for t in f.tables.values() for k in t]
    assert sorted(keys) == sorted(r.key for r in rows(10) + rows(4, "late"))
    store.close()
    assert all(f.closed for f in fakes)


def test_every_aggregate_goes_to_the_first_shard_so_revisions_are_decided_together() -> None:
    fakes = [FakeStore() for _ in range(2)]
    result = sharded(fakes).write([agg(b"k", 2), *rows(3), agg(b"k", 5), agg(b"k", 1)])
    assert result.stale == 2
    assert fakes[0].tables["aggregates"][b"k"][MESSAGE] == b'{"revision": 5}'
    assert not fakes[1].tables.get("aggregates")


def test_a_failing_shard_fails_the_whole_write() -> None:
    fakes = [FakeStore(), FakeStore(fail=1)]
    with pytest.raises(ServiceUnavailable):
        sharded(fakes).write(rows(6))


def test_one_store_is_used_directly() -> None:
    class Direct(FakeStore):
        def write(self, rows: Sequence[Row]) -> WriteResult:
            self.seen: Any = rows
            return super().write(rows)

    only = Direct()
    batch = rows(2)
    sharded([only]).write(batch)
    assert only.seen is batch
