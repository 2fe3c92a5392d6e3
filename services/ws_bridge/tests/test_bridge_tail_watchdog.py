"""The Kafka tail's fetch-start watchdog (ws_bridge.tail): a partition whose fetcher never started gets a new consumer
(librdkafka#5586, seen on a busy Kubernetes node), and a healthy idle partition is never taken for a stuck one.

The rule is unit-tested; the recovery runs against the REAL Kafka broker. Only its trigger is forced there (the
librdkafka bug needs a broker that answers an offset lookup with NOT_COORDINATOR while it starts): what is real is
that the new consumer starts where the old one stood, so no record is lost or pushed twice.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from iotcommon.topics import Topics
from ws_bridge import tail as tail_module
from ws_bridge.lazy import Live, resolved
from ws_bridge.tail import KafkaTail, unstarted

sys.path.insert(0, str(Path(__file__).parent))
from test_bridge_live_kafka import create_topics, produce, transactional


def test_only_partitions_without_a_fetch_response_past_the_limit_are_stuck() -> None:
    assigned = {("t", 0): 0.0, ("t", 1): 0.0, ("t", 2): 95.0}
    high = {("t", 0): -1001, ("t", 1): 0, ("t", 2): -1001}.__getitem__
    # t[0]: no response 100 s after its assignment; t[1]: answered (an empty partition has high watermark 0);
    # t[2]: assigned 5 s ago, still within the limit
    assert unstarted(assigned, high, now=100.0, limit=60.0) == [("t", 0)]
    assert unstarted(assigned, high, now=50.0, limit=60.0) == []


def _wait(what: str, check: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


@pytest.mark.kafka
def test_idle_partitions_are_left_alone_and_a_new_consumer_loses_and_doubles_nothing(
        kafka_service: Any, msg: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    topics = Topics(f"bw{uuid.uuid4().hex[:8]}")
    create_topics(kafka_service.bootstrap, [topics.raw])
    monkeypatch.setattr(tail_module, "FETCH_START_S", 3.0)
    got: list[Live] = []
    lock = threading.Lock()

    def deliver(records: list[Live]) -> None:
        with lock:
            got.extend(records)

    tail = KafkaTail(kafka_service.bootstrap, topics, streams=("raw",))
    tail.start(deliver)
    try:
        _wait("the tail's assignment", lambda: tail.connected)
        time.sleep(12)  # four times the limit: idle, but their fetchers answer (cached high watermark known)
        assert tail.consumers_recreated == 0
        producer = transactional(kafka_service.bootstrap)
        first = [msg.reading(seq=i, ts=f"2020-01-01T{i:02d}:15:00Z") for i in range(5)]
        produce(producer, topics.raw, [("site1/TH1", m) for m in first])
        _wait("the first five readings", lambda: len(got) >= 5)

        forced = iter([True])  # the next check finds every partition stuck, the ones after it none

        def once(assigned: dict[Any, float], high: Any, now: float, limit: float) -> list[Any]:
            return sorted(assigned) if next(forced, False) else []

        monkeypatch.setattr(tail_module, "unstarted", once)
        _wait("a new consumer", lambda: tail.consumers_recreated == 1)
        second = [msg.reading(seq=i, ts=f"2020-01-01T{i:02d}:15:00Z") for i in range(5, 10)]
        produce(producer, topics.raw, [("site1/TH1", m) for m in second])
        _wait("the next five readings", lambda: len(got) >= 10)
        time.sleep(2)  # anything pushed twice would come now
    finally:
        tail.stop()
    with lock:
        seqs = sorted(r.data["seq"] for r in resolved(got))  # raw readings come undecoded (ws_bridge.lazy)
    assert seqs == list(range(10))
