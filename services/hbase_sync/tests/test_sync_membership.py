"""hbase_sync.group.Group against a FAKE consumer and clock: pausing and resuming the assigned partitions, and what a
revocation tells the join watchdog. (Replacing a consumer that never joins: test_sync_joinwatch.py.)"""

from __future__ import annotations

from typing import Any

from confluent_kafka import TopicPartition
from sync_fakes import FakeClock, FakeConsumer

from hbase_sync.group import Group
from hbase_sync.metrics import SyncMetrics
from hbase_sync.offsets import Committer


def group(consumer: FakeConsumer, clock: FakeClock, revoked: list[Any]) -> Group:
    metrics = SyncMetrics()
    return Group(consumer, ["t"], metrics, Committer(consumer, metrics, clock), clock,
                 on_revoke=lambda _, parts: revoked.append(parts), on_lost=lambda _, parts: None,
                 join_timeout_s=60, new_consumer=None)  # fmt: skip


def test_pause_and_resume_every_assigned_partition_and_count_it_once() -> None:
    clock, consumer = FakeClock(), FakeConsumer({("t", 0): [], ("t", 1): []})
    g = group(consumer, clock, [])
    g.subscribe()
    g.pause()
    g.pause()
    assert g.paused and consumer.paused == {("t", 0), ("t", 1)}
    assert g.metrics.paused._value.get() == 1
    g.resume()
    assert not g.paused and consumer.paused == set()
    assert g.metrics.paused._value.get() == 0


def test_losing_every_partition_starts_the_join_wait_and_losing_some_does_not() -> None:
    clock, consumer = FakeClock(), FakeConsumer({("t", 0): [], ("t", 1): []})
    g = group(consumer, clock, [])
    g.subscribe()
    assert g.join.waiting_since is None  # the fake assigns at once: in the group
    assert g.left([TopicPartition("t", 0)]) == {("t", 0)}
    assert g.join.waiting_since is None  # still holds t[1]
    assert g.left([TopicPartition("t", 0), TopicPartition("t", 1)]) == {("t", 0), ("t", 1)}
    assert g.join.waiting_since == clock.now
    assert g.metrics.assigned._value.get() == 2 - 1 - 2


def test_the_worker_s_rebalance_callbacks_are_the_ones_subscribed() -> None:
    revoked: list[Any] = []
    consumer = FakeConsumer({("t", 0): []})
    group(consumer, FakeClock(), revoked).subscribe()
    consumer.revoke([("t", 0)])
    assert [[(tp.topic, tp.partition) for tp in parts] for parts in revoked] == [[("t", 0)]]
