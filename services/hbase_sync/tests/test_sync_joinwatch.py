"""The consumer-group join watchdog: the pure JoinWatch with a fake clock, then the worker loop with FAKE consumers
(in-memory, fake clock): a consumer that is never let into its group is closed and replaced, one that is in the
group with nothing to hold is left alone."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from sync_fakes import FakeClock, FakeConsumer, FakeStore
from test_sync_worker import reading

from hbase_sync.backoff import Backoff
from hbase_sync.batching import BatchPolicy
from hbase_sync.joinwatch import JoinWatch
from hbase_sync.mapping import Mapper
from hbase_sync.metrics import SyncMetrics
from hbase_sync.worker import Worker
from iotcommon.topics import Topics

T = Topics("p1")


# --- JoinWatch ------------------------------------------------------------------------------------------------------


def test_a_subscribed_consumer_is_overdue_once_the_timeout_has_passed_without_an_assignment() -> None:
    watch = JoinWatch(timeout_s=120)
    watch.subscribed(now=1000.0)
    assert watch.overdue(1000.0) is None
    assert watch.overdue(1119.9) is None
    assert watch.overdue(1120.0) == 120.0
    assert watch.overdue(1300.0) == 300.0


def test_any_assignment_callback_ends_the_wait_even_one_with_no_partitions() -> None:
    watch = JoinWatch(timeout_s=120)
    watch.subscribed(now=1000.0)
    watch.assigned()  # e.g. more replicas than partitions: in the group, holding nothing
    assert watch.overdue(5000.0) is None


def test_losing_every_partition_starts_a_new_wait_and_keeping_some_does_not() -> None:
    watch = JoinWatch(timeout_s=60)
    watch.subscribed(now=0.0)
    watch.assigned()
    watch.revoked(now=500.0, still_held=2)  # a cooperative rebalance that leaves partitions: still in the group
    assert watch.overdue(10_000.0) is None
    watch.revoked(now=10_000.0, still_held=0)  # an eager rebalance: everything revoked, waiting for the next assignment
    assert watch.overdue(10_059.0) is None
    assert watch.overdue(10_060.0) == 60.0
    watch.revoked(now=10_030.0, still_held=0)  # a second loss during the same wait does not restart it
    assert watch.overdue(10_060.0) == 60.0
    watch.assigned()
    assert watch.overdue(20_000.0) is None


def test_each_replacement_in_a_row_gives_the_next_consumer_twice_as_long_up_to_15_minutes() -> None:
    watch = JoinWatch(timeout_s=120)
    watch.subscribed(now=0.0)
    now = 0.0
    for limit in (120.0, 240.0, 480.0, 900.0, 900.0):  # 960 capped at 900
        assert watch.overdue(now + limit - 1) is None
        assert watch.overdue(now + limit) == limit
        now += limit
        watch.replacing(now)
    watch.assigned()  # one got in: the next wait is back to the timeout
    watch.revoked(now=10_000.0, still_held=0)
    assert watch.overdue(10_120.0) == 120.0


def test_a_timeout_of_zero_turns_the_watchdog_off() -> None:
    watch = JoinWatch(timeout_s=0)
    watch.subscribed(now=0.0)
    assert watch.overdue(1e9) is None


def test_nothing_is_overdue_before_the_subscription() -> None:
    assert JoinWatch(timeout_s=1).overdue(1e9) is None


# --- the worker -----------------------------------------------------------------------------------------------------


@dataclass
class NeverJoins(FakeConsumer):
    """A FAKE consumer that is never let into its group: subscribe() keeps the callbacks and assigns nothing."""

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None) -> None:
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}


@dataclass
class JoinsEmpty(FakeConsumer):
    """A FAKE consumer let into its group with no partition (more replicas than partitions)."""

    def subscribe(self, topics: list[str], on_assign: Any = None, on_revoke: Any = None, on_lost: Any = None) -> None:
        self.callbacks = {"assign": on_assign, "revoke": on_revoke, "lost": on_lost}
        on_assign(self, [])


def _worker(consumer: FakeConsumer, clock: FakeClock, stop: threading.Event, store: FakeStore,
            new_consumer: Any = None) -> Worker:  # fmt: skip
    return Worker(consumer, store, Mapper(T), BatchPolicy(4, 0.5), Backoff(0.1, 1.0, jitter=0.0), retries=3,
                  stop=stop, clock=clock, sleep=clock.sleep, join_timeout_s=120, new_consumer=new_consumer)


def test_a_consumer_never_let_into_its_group_is_closed_and_replaced_after_the_join_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logs: dict[tuple[str, int], list[bytes | None]] = {(T.raw, 0): [reading(i) for i in range(6)]}
    clock, stop, store = FakeClock(), threading.Event(), FakeStore()
    stuck = NeverJoins(logs, clock=clock)
    replacements: list[FakeConsumer] = []
    started = clock.now

    def new_consumer() -> FakeConsumer:
        fresh = FakeConsumer(logs, clock=clock)
        fresh.on_consume = lambda c: stop.set() if c.drained() else None
        replacements.append(fresh)
        return fresh

    stuck.on_consume = lambda c: stop.set() if clock.now - started > 3600 else None  # a bound if nothing happens
    worker = _worker(stuck, clock, stop, store, new_consumer)
    worker.run()
    assert stuck.closed and len(replacements) == 1
    assert replacements[0].committed == {(T.raw, 0): 6}
    assert len(store.tables["raw"]) == 6
    assert worker.metrics.recreated._value.get() == 1
    assert "no partition assigned for 120 s" in caplog.text


def test_a_consumer_in_its_group_with_no_partition_is_never_replaced() -> None:
    clock, stop, store = FakeClock(), threading.Event(), FakeStore()
    started = clock.now
    empty = JoinsEmpty({(T.raw, 0): []}, clock=clock)
    empty.on_consume = lambda c: stop.set() if clock.now - started > 3600 else None

    def new_consumer() -> FakeConsumer:
        raise AssertionError("a consumer in its group was replaced")

    _worker(empty, clock, stop, store, new_consumer).run()
    assert clock.now - started > 3600


def test_the_groups_state_in_librdkafkas_statistics_is_kept_for_the_watchdogs_log() -> None:
    metrics = SyncMetrics(CollectorRegistry())
    assert metrics.group_state == "not reported yet"
    metrics.observe_stats(json.dumps({"cgrp": {"state": "wait-coord", "join_state": "init", "rebalance_reason": "",
                                               "assignment_size": 0, "stateage": 61000}}))  # fmt: skip
    assert metrics.group_state == "state wait-coord, join_state init, rebalance_reason , assignment_size 0"
