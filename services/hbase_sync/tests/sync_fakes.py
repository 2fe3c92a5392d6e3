"""FAKES for unit tests only: an in-memory Kafka consumer and an in-memory row store. No real service here.

Tests against the real Kafka and HBase are in test_sync_hbase.py, test_sync_faults.py and test_sync_group.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from hbase_sync.mapping import MESSAGE, Row, latest_per_key, stored_revision
from hbase_sync.store import WriteResult
from iotcommon.errors import ServiceUnavailable


@dataclass
class FakeMessage:
    """Same accessors as confluent_kafka.Message."""

    _topic: str
    _partition: int
    _offset: int
    _value: bytes | None
    _key: bytes | None = None
    _ts: int = 1_600_000_000_000

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return (1, self._ts)

    def error(self) -> KafkaError | None:
        return None


@dataclass
class FakeConsumer:
    """A FAKE consumer over in-memory partition logs. consume() serves unpaused assigned partitions from the
    committed offset on; advance(seconds) of the fake clock is called with each consume timeout."""

    logs: dict[tuple[str, int], list[bytes | None]]
    clock: Any = None
    committed: dict[tuple[str, int], int] = field(default_factory=dict)
    commits: list[dict[tuple[str, int], int]] = field(default_factory=list)
    paused: set[tuple[str, int]] = field(default_factory=set)
    closed: bool = False
    on_consume: Callable[[FakeConsumer], None] | None = None
    _pos: dict[tuple[str, int], int] = field(default_factory=dict)
    _assigned: list[tuple[str, int]] = field(default_factory=list)
    callbacks: dict[str, Any] = field(default_factory=dict)

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None) -> None:
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        self._assigned = [tp for tp in self.logs if tp[0] in topics]
        self._pos = {tp: self.committed.get(tp, 0) for tp in self._assigned}
        if on_assign:
            on_assign(self, [TopicPartition(t, p) for t, p in self._assigned])

    def revoke(self, tps: list[tuple[str, int]]) -> None:
        """Simulate a rebalance that takes partitions away (they restart from the committed offset if re-added)."""
        self.callbacks["revoke"](self, [TopicPartition(t, p) for t, p in tps])
        self._assigned = [tp for tp in self._assigned if tp not in tps]

    def reassign(self, tps: list[tuple[str, int]]) -> None:
        """Simulate a rebalance that gives partitions (back): they start at the committed offset."""
        for tp in tps:
            self._pos[tp] = self.committed.get(tp, 0)
            self.paused.discard(tp)
        self._assigned += [tp for tp in tps if tp not in self._assigned]
        self.callbacks["assign"](self, [TopicPartition(t, p) for t, p in tps])

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        if self.on_consume:
            self.on_consume(self)
        out: list[FakeMessage] = []
        for tp in self._assigned:
            if tp in self.paused:
                continue
            log = self.logs[tp]
            while self._pos[tp] < len(log) and len(out) < num_messages:
                out.append(FakeMessage(tp[0], tp[1], self._pos[tp], log[self._pos[tp]]))
                self._pos[tp] += 1
        if not out and self.clock is not None:
            self.clock.advance(max(timeout, 0.0))
        return out

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> list[TopicPartition]:
        snapshot = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        self.commits.append(snapshot)
        self.committed.update(snapshot)
        return offsets

    def pause(self, partitions: list[TopicPartition]) -> None:
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def resume(self, partitions: list[TopicPartition]) -> None:
        self.paused -= {(tp.topic, tp.partition) for tp in partitions}

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(t, p) for t, p in self._assigned]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self._pos.get((tp.topic, tp.partition), -1001))
                for tp in partitions]

    def close(self) -> None:
        self.closed = True

    def drained(self) -> bool:
        return all(self.committed.get(tp, 0) == len(log) for tp, log in self.logs.items())


@dataclass
class FakeStore:
    """A FAKE row store with the real store's semantics (put = overwrite; aggregates keep the highest revision).
    ``fail`` > 0 makes that many next writes raise ServiceUnavailable, like an unreachable Thrift server."""

    tables: dict[str, dict[bytes, dict[bytes, bytes]]] = field(default_factory=dict)
    fail: int = 0
    calls: int = 0
    failures: int = 0
    closed: bool = False

    def write(self, rows: Sequence[Row]) -> WriteResult:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            self.failures += 1
            raise ServiceUnavailable("fake HBase is down")
        result = WriteResult()
        plain = [r for r in rows if r.table != "aggregates"]
        for row in plain:
            self.tables.setdefault(row.table, {})[row.key] = dict(row.cells)
            result.written[row.table] += 1
        aggs = [r for r in rows if r.table == "aggregates"]
        latest = latest_per_key(aggs)
        result.stale += len(aggs) - len(latest)
        table = self.tables.setdefault("aggregates", {})
        for key, row in latest.items():
            if key in table and stored_revision(table[key][MESSAGE]) >= row.revision:
                result.stale += 1
                continue
            table[key] = dict(row.cells)
            result.written["aggregates"] += 1
        return result

    def close(self) -> None:
        self.closed = True


class FakeClock:
    """A FAKE monotonic clock for the worker; sleep() advances it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.now += seconds
