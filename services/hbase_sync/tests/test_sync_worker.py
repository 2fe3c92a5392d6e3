"""The worker loop against FAKES (in-memory consumer and store, fake clock): commit only after the write, pause and
resume around an outage, graceful stop, rebalances. The same behaviour against the real Kafka and HBase is in
test_sync_hbase.py, test_sync_faults.py and test_sync_group.py."""

from __future__ import annotations

import json
import threading
from typing import Any

from sync_fakes import FakeClock, FakeConsumer, FakeStore

from hbase_sync.backoff import Backoff
from hbase_sync.batching import BatchPolicy
from hbase_sync.mapping import MESSAGE, Mapper
from hbase_sync.worker import Worker
from iotcommon.topics import Topics

T = Topics("p1")


def reading(seq: int, sensor: str = "TH1") -> bytes:
    ts = f"2020-01-01T{seq // 60 % 24:02d}:{seq % 60:02d}:00Z"
    return json.dumps({"v": 1, "site": "s1", "sensor": sensor, "ts": ts, "value": float(seq), "unit": "C",
                       "seq": seq}).encode()


def aggregate(revision: int, day: str = "2020-01-01") -> bytes:
    return json.dumps({"v": 1, "site": "s1", "name": "AggDay[TH1]", "kind": "AggDay", "sensor": "TH1", "day": day,
                       "value": float(revision), "unit": "C", "count": 96, "revision": revision,
                       "window_start": "2019-12-31T22:00:00Z", "window_end": "2020-01-01T22:00:00Z",
                       "emitted_at": "2020-01-02T00:00:01Z"}).encode()


def make(logs: dict[tuple[str, int], list[bytes | None]], store: FakeStore | None = None, *, max_rows: int = 4,
         retries: int = 3) -> tuple[Worker, FakeConsumer, FakeStore, threading.Event]:
    clock = FakeClock()
    consumer = FakeConsumer(logs, clock=clock)
    store = store or FakeStore()
    stop = threading.Event()
    worker = Worker(consumer, store, Mapper(T), BatchPolicy(max_rows, 0.5), Backoff(0.1, 1.0, jitter=0.0),
                    retries=retries, stop=stop, clock=clock, sleep=clock.sleep)
    return worker, consumer, store, stop


def stop_when_drained(consumer: FakeConsumer, stop: threading.Event, limit: int = 10_000) -> None:
    calls = {"n": 0}

    def hook(c: FakeConsumer) -> None:
        calls["n"] += 1
        if c.drained() or calls["n"] > limit:
            stop.set()

    consumer.on_consume = hook


def test_every_record_is_written_once_and_offsets_are_committed_after_the_write() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {
        (T.raw, 0): [reading(i) for i in range(10)],
        (T.raw, 1): [reading(i, "TH2") for i in range(7)],
        (T.aggregates, 0): [aggregate(1), aggregate(2)],
    }
    worker, consumer, store, stop = make(logs)
    written_before_commit: list[int] = []
    original_commit = consumer.commit

    def commit(**kw: Any) -> Any:
        written_before_commit.append(sum(len(t) for t in store.tables.values()))
        return original_commit(**kw)

    consumer.commit = commit  # type: ignore[method-assign]
    stop_when_drained(consumer, stop)
    worker.run()
    assert consumer.committed == {(T.raw, 0): 10, (T.raw, 1): 7, (T.aggregates, 0): 2}
    assert len(store.tables["raw"]) == 17
    assert sorted(v[MESSAGE] for v in store.tables["raw"].values()) == sorted(logs[(T.raw, 0)] + logs[(T.raw, 1)])
    assert [json.loads(v[MESSAGE])["revision"] for v in store.tables["aggregates"].values()] == [2]
    # each commit covered only rows already in the store: the store grew before every commit
    assert written_before_commit == sorted(written_before_commit)
    assert consumer.closed and store.closed


def test_a_lower_revision_arriving_later_never_replaces_a_higher_one() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {(T.aggregates, 0): [aggregate(3), aggregate(1), aggregate(2)]}
    worker, consumer, store, stop = make(logs, max_rows=1)  # one record per batch: every revision is a separate write
    stop_when_drained(consumer, stop)
    worker.run()
    (stored,) = store.tables["aggregates"].values()
    assert json.loads(stored[MESSAGE])["revision"] == 3


def test_unmappable_records_go_to_the_deadletters_table_and_the_rest_keeps_flowing() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {(T.raw, 0): [reading(1), b"garbage", None, reading(2)]}
    worker, consumer, store, stop = make(logs)
    stop_when_drained(consumer, stop)
    worker.run()
    assert len(store.tables["raw"]) == 2
    letters = [json.loads(v[MESSAGE]) for v in store.tables["deadletters"].values()]
    assert sorted((d["offset"], d["reason"]) for d in letters) == [(1, "unparsable"), (2, "unparsable")]
    assert consumer.committed == {(T.raw, 0): 4}


def test_while_hbase_is_down_nothing_is_committed_consumption_pauses_and_it_resumes_by_itself() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {(T.raw, 0): [reading(i) for i in range(12)]}
    store = FakeStore(fail=6)  # more failures than the quick retries: the worker must wait it out, paused
    worker, consumer, store, stop = make(logs, store, retries=3)
    seen: list[tuple[int, bool, int]] = []

    def hook(c: FakeConsumer) -> None:
        seen.append((store.failures, bool(c.paused), sum(c.committed.values())))
        if c.drained():
            stop.set()

    consumer.on_consume = hook
    worker.run()
    # the first failure happens in the writer thread; from the first retry on the worker polls paused
    retrying = [paused for failures, paused, _ in seen if 1 < failures < 6]
    assert retrying, "the worker kept polling (staying in the group) while HBase was down"
    assert all(retrying)
    assert all(committed == 0 for failures, _, committed in seen if 0 < failures < 6)  # nothing unwritten committed
    assert consumer.committed == {(T.raw, 0): 12}
    assert len(store.tables["raw"]) == 12
    assert not consumer.paused  # resumed
    assert worker.metrics.paused._value.get() == 0


def test_stop_flushes_commits_and_leaves() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {(T.raw, 0): [reading(i) for i in range(3)]}
    worker, consumer, store, stop = make(logs, max_rows=100)  # never full: only the stop flushes (clock frozen)
    consumer.clock = None  # the fake clock does not move: the time bound is never reached either

    def hook(c: FakeConsumer) -> None:
        if sum(len(v) for v in c.logs.values()) == sum(c._pos.values()):
            stop.set()

    consumer.on_consume = hook
    worker.run()
    assert consumer.committed == {(T.raw, 0): 3}
    assert len(store.tables["raw"]) == 3
    assert consumer.closed


def test_stopping_while_hbase_is_down_commits_nothing_unwritten() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {(T.raw, 0): [reading(i) for i in range(3)]}
    store = FakeStore(fail=10**6)
    worker, consumer, store, stop = make(logs, store, max_rows=3, retries=2)
    consumer.on_consume = lambda c: stop.set() if store.failures >= 1 else None
    worker.run()
    assert consumer.committed == {}
    assert store.tables == {}
    assert store.failures == 1 + 2  # the write, then the 2 quick retries; then it gives up (stopping)
    assert consumer.closed


def test_partitions_revoked_during_an_outage_lose_their_unwritten_rows_uncommitted() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {
        (T.raw, 0): [reading(i) for i in range(2)],
        (T.raw, 1): [reading(i, "TH2") for i in range(2)],
    }
    store = FakeStore(fail=3)
    worker, consumer, store, stop = make(logs, store, max_rows=4, retries=5)
    state = {"revoked": False}

    def hook(c: FakeConsumer) -> None:
        if store.failures == 1 and not state["revoked"]:
            state["revoked"] = True
            c.revoke([(T.raw, 1)])
        if c.committed.get((T.raw, 0)) == 2:
            stop.set()

    consumer.on_consume = hook
    worker.run()
    assert consumer.committed == {(T.raw, 0): 2}  # partition 1 not committed: its next owner reads it again
    keys = store.tables["raw"]
    assert len(keys) == 2
    assert all(b"|TH1|" in k for k in keys)


def test_a_revoke_writes_and_commits_the_rows_held_for_the_partitions_before_they_move() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {
        (T.raw, 0): [reading(i) for i in range(3)],
        (T.raw, 1): [reading(i, "TH2") for i in range(3)],
    }
    worker, consumer, store, stop = make(logs, max_rows=100)  # never due by size
    consumer.clock = None  # nor by time: only the revoke makes the worker write
    state = {"calls": 0}

    def hook(c: FakeConsumer) -> None:
        state["calls"] += 1
        if state["calls"] == 2:  # the first consume returned the first record of partition 0; it waits in the batch
            assert c.committed == {} and not store.tables.get("raw")
            c.revoke([(T.raw, 0)])
            assert c.committed == {(T.raw, 0): 1}  # written and committed before the partition moved
            assert len(store.tables["raw"]) == 1
            stop.set()

    consumer.on_consume = hook
    worker.run()


def test_after_an_outage_in_which_every_partition_moved_away_and_back_the_worker_consumes_again() -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {(T.raw, 0): [reading(i) for i in range(4)]}
    store = FakeStore(fail=2)  # HBase is back right after the partition moved away
    worker, consumer, store, stop = make(logs, store, max_rows=4, retries=10)
    state = {"revoked_at": 0, "calls": 0}

    def hook(c: FakeConsumer) -> None:
        state["calls"] += 1
        if store.failures == 2 and not state["revoked_at"]:  # mid-outage, the partition goes away ...
            state["revoked_at"] = state["calls"]
            c.revoke([(T.raw, 0)])
        elif state["revoked_at"] and state["calls"] == state["revoked_at"] + 3:  # ... and comes back later
            c.reassign([(T.raw, 0)])
        if c.drained():
            stop.set()

    consumer.on_consume = hook
    worker.run()
    assert state["revoked_at"]
    assert consumer.committed == {(T.raw, 0): 4}
    assert len(store.tables["raw"]) == 4
    assert not consumer.paused and not worker.paused
    assert worker.metrics.paused._value.get() == 0
