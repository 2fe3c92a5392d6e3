"""The sync worker's consumer and its place in the consumer group: subscribing, pausing and resuming the assigned
partitions (backpressure while HBase is down), following assignments and losses for the join watchdog, and replacing a
consumer that is not let into its group within the join timeout (``joinwatch.JoinWatch`` decides when). What a
revocation or a loss does to the rows the worker holds is the worker's (``Worker._on_revoke``, ``Worker._on_lost``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from confluent_kafka import TopicPartition

from hbase_sync.joinwatch import JoinWatch
from hbase_sync.metrics import SyncMetrics
from hbase_sync.offsets import Committer, Consumer

log = logging.getLogger("hbase_sync.worker")

Rebalance = Callable[[Any, list[TopicPartition]], None]


class Group:
    def __init__(self, consumer: Consumer, topics: list[str], metrics: SyncMetrics, commits: Committer,
                 clock: Callable[[], float], *, on_revoke: Rebalance, on_lost: Rebalance, join_timeout_s: float,
                 new_consumer: Callable[[], Consumer] | None) -> None:  # fmt: skip
        self.consumer, self.topics, self.metrics, self.commits, self.clock = consumer, topics, metrics, commits, clock
        self.on_revoke, self.on_lost = on_revoke, on_lost
        self.join = JoinWatch(join_timeout_s)
        self.new_consumer = new_consumer  # makes the replacement of a consumer that never joined its group
        self.paused = False

    def subscribe(self, replacing: bool = False) -> None:
        if replacing:
            self.join.replacing(self.clock())
        else:
            self.join.subscribed(self.clock())
        self.consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_lost)  # fmt: skip
        log.info("subscribed to %s", ", ".join(self.topics))

    def replace_if_overdue(self) -> None:
        """Not in the group after the join timeout: close the consumer and subscribe with a new one. Call it only
        with nothing pending (no partition was held since the wait began)."""
        waited = self.join.overdue(self.clock())
        if waited is None:
            return
        self.metrics.recreated.inc()
        if self.new_consumer is None:
            log.error("no partition assigned for %.0f s: the consumer is not in its group", waited)
            self.join.replacing(self.clock())
            return
        log.error("no partition assigned for %.0f s (IOTPIPE_SYNC_JOIN_TIMEOUT_S %.0f): the consumer never got into "
                  "its group (librdkafka: %s); closing it and subscribing with a new one", waited,
                  self.join.timeout_s, self.metrics.group_state)
        self.consumer.close()
        self.consumer = self.commits.consumer = self.new_consumer()
        self.commits.forget(set(self.commits.committed))
        self.subscribe(replacing=True)
        log.info("the new consumer gets %.0f s to join", self.join.limit_s)

    def pause(self) -> None:
        assigned = self.consumer.assignment()
        if assigned:
            self.consumer.pause(assigned)
        if not self.paused:
            self.paused = True
            self.metrics.paused.set(1)

    def resume(self) -> None:
        if self.paused:
            assigned = self.consumer.assignment()
            if assigned:
                self.consumer.resume(assigned)
            self.paused = False
            self.metrics.paused.set(0)

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if partitions:
            log.info("assigned %s", names(partitions))
        self.join.assigned()
        self.metrics.assigned.inc(len(partitions))

    def left(self, partitions: list[TopicPartition]) -> set[tuple[str, int]]:
        """Partitions revoked or lost: counted, and told to the join watchdog. Returns them as (topic, partition)."""
        self.metrics.assigned.dec(len(partitions))
        gone = {(tp.topic, tp.partition) for tp in partitions}
        held = {(tp.topic, tp.partition) for tp in self.consumer.assignment()} - gone
        self.join.revoked(self.clock(), len(held))
        return gone


def names(partitions: list[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "nothing"
