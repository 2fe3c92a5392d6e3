"""The worker's offsets: what it commits, and when. Offsets are committed synchronously, per partition, only for rows
already in HBase (after a write), or, when nothing is pending, positions that only moved past transaction markers."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from hbase_sync.batching import Batch
from hbase_sync.mapping import KafkaRecord
from hbase_sync.metrics import SyncMetrics

log = logging.getLogger("hbase_sync.worker")

IDLE_COMMIT_EVERY_S = 2.0
Offsets = dict[tuple[str, int], int]  # (topic, partition) -> offset of the next record to read


class Record(KafkaRecord, Protocol):
    def error(self) -> KafkaError | None: ...


class Consumer(Protocol):
    """The part of confluent_kafka.Consumer the worker uses (unit tests pass a fake)."""

    def subscribe(self, topics: list[str], on_assign: Any = ..., on_revoke: Any = ..., on_lost: Any = ...) -> None: ...
    def consume(self, num_messages: int = ..., timeout: float = ...) -> Sequence[Record]: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: Literal[False]) -> list[TopicPartition]: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def close(self) -> None: ...


class Committer:
    def __init__(self, consumer: Consumer, metrics: SyncMetrics, clock: Callable[[], float]) -> None:
        self.consumer, self.metrics, self.clock = consumer, metrics, clock
        self.committed: Offsets = {}
        self.batches = 0  # batches committed since start
        self._last_idle_commit = clock()

    def stamp(self, batch: Batch) -> None:
        """Give the batch the consumer's positions of its partitions (taken while it holds every consumed record)."""
        tps = [TopicPartition(topic, partition) for topic, partition in batch.partitions()]
        if not tps:
            return
        try:
            positions = self.consumer.position(tps)
        except KafkaException:
            return  # the offsets after the last rows are enough
        batch.stamp({(tp.topic, tp.partition): tp.offset for tp in positions if tp.error is None and tp.offset >= 0})

    def commit_idle(self) -> None:
        """Nothing pending: commit positions that moved past transaction markers only, so the group's lag reaches 0."""
        now = self.clock()
        if now - self._last_idle_commit < IDLE_COMMIT_EVERY_S:
            return
        self._last_idle_commit = now
        try:
            positions = self.consumer.position(self.consumer.assignment())
        except KafkaException:
            return
        moved = {(tp.topic, tp.partition): tp.offset for tp in positions if tp.error is None and tp.offset >= 0
                 and tp.offset > self.committed.get((tp.topic, tp.partition), -1)}
        if moved:
            self.commit(moved, count=False)

    def commit(self, offsets: Offsets, *, count: bool = True) -> None:
        """Commit (a batch's offsets when ``count``). A failed commit is logged: those rows are rewritten, unchanged."""
        tps = [TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()]
        try:
            answer = self.consumer.commit(offsets=tps, asynchronous=False)
        except KafkaException as exc:
            self.metrics.errors.labels("commit").inc()
            log.warning("commit failed (%s): the rows are in HBase; they will be read and rewritten, unchanged", exc)
            return
        failed = [tp for tp in answer or () if getattr(tp, "error", None)]
        if failed:
            self.metrics.errors.labels("commit").inc()
            log.warning("commit failed for %s: those rows are in HBase and will be rewritten, unchanged",
                        ", ".join(f"{tp.topic}[{tp.partition}]: {tp.error}" for tp in failed))
        bad = {(tp.topic, tp.partition) for tp in failed}
        self.committed.update({tp: offset for tp, offset in offsets.items() if tp not in bad})
        if count:
            self.metrics.batches.inc()
            self.batches += 1

    def forget(self, partitions: set[tuple[str, int]]) -> None:
        """Partitions revoked: what was committed for them is the next owner's business."""
        for tp in partitions:
            self.committed.pop(tp, None)
