"""ShardedStore splits one batch over several stores (FAKE stores here; the real store is exercised by the tests
against HBase): every row written once, all aggregates in one shard, any shard failure fails the whole write, and a
shard only when it gets enough rows to be worth its own call."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest
from sync_fakes import FakeStore

from hbase_sync.mapping import MESSAGE, Row
from hbase_sync.store import MIN_SHARD_ROWS, ShardedStore, WriteResult
from iotcommon.errors import ServiceUnavailable


def rows(n: int, table: str = "raw") -> list[Row]:
    return [Row(table, f"{table}{i}".encode(), {MESSAGE: b"{}"}) for i in range(n)]


def agg(key: bytes, revision: int) -> Row:
    return Row("aggregates", key, {MESSAGE: b'{"revision": %d}' % revision}, revision=revision)


def sharded(fakes: Sequence[FakeStore], min_shard_rows: int = 1) -> ShardedStore:
    return ShardedStore(list(fakes), min_shard_rows)  # type: ignore[arg-type]


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


def test_a_batch_is_split_only_into_shards_of_at_least_min_shard_rows() -> None:
    fakes = [FakeStore() for _ in range(3)]
    store = sharded(fakes, min_shard_rows=4)
    store.write(rows(7))  # 7 // 4 = 1 shard: one call on the first store
    assert [f.calls for f in fakes] == [1, 0, 0]
    store.write([*rows(8, "late"), agg(b"k", 1)])  # 9 rows: 2 shards of 4 late rows, the aggregate with the first
    assert [f.calls for f in fakes] == [2, 1, 0]
    assert len(fakes[0].tables["late"]) == 4 and len(fakes[1].tables["late"]) == 4
    assert b"k" in fakes[0].tables["aggregates"]
    store.write(rows(100, "deadletters"))  # never more shards than stores
    assert [f.calls for f in fakes] == [3, 2, 1]
    assert sum(len(f.tables["deadletters"]) for f in fakes) == 100


def test_the_default_keeps_batches_under_twice_min_shard_rows_in_one_call() -> None:
    store = ShardedStore([FakeStore(), FakeStore()])  # type: ignore[list-item]
    assert store.min_shard_rows == MIN_SHARD_ROWS == 500
    assert [store.shards_for(n) for n in (0, 1, 999, 1000, 5000)] == [1, 1, 1, 2, 2]
    with pytest.raises(ValueError, match="min_shard_rows"):
        ShardedStore([FakeStore()], min_shard_rows=0)  # type: ignore[list-item]
