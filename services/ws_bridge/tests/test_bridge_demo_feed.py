"""The demo feed (stand-in for the stream job's output) writes valid messages of every stream to the REAL Kafka:
readings, daily aggregates (with revisions after late data), late readings and dead letters."""

from __future__ import annotations

import subprocess
import sys
import uuid
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from iotcommon.messages import reading_from_dict
from iotcommon.topics import Topics
from iotcommon.wire import aggregate_from_dict, deadletter_from_dict, late_from_dict

pytestmark = pytest.mark.kafka


def read_all(bootstrap: str, topic: str) -> list[bytes]:
    """Every committed message of the topic (the feed has exited, so it is complete): read up to its end."""
    values: list[bytes] = []
    at_end: set[int] = set()
    with Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}",
                   "isolation.level": "read_committed", "enable.auto.commit": False,
                   "enable.partition.eof": True}) as consumer:  # closed here also when an assertion fails
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        for _ in range(600):  # bounded: at most 600 batches of up to 1 s
            if len(at_end) == len(partitions):
                break
            for message in consumer.consume(10_000, 1.0):
                if message.error() is None:
                    values.append(message.value() or b"")
                elif message.error().code() == KafkaError._PARTITION_EOF:
                    at_end.add(message.partition())
                else:
                    raise AssertionError(message.error())
    assert len(at_end) == len(partitions), f"{topic}: the end was not reached"
    return values


def test_demo_feed_writes_every_stream(kafka_service: Any) -> None:
    import json

    topics = Topics(f"feed{uuid.uuid4().hex[:8]}")
    result = subprocess.run([sys.executable, "-m", "ws_bridge.demo_feed", "--kafka-bootstrap", kafka_service.bootstrap,
                             "--topic-prefix", topics.prefix, "--steps", "500", "--steps-per-s", "1000",
                             "--sites", "a,b"], capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    raw = [reading_from_dict(json.loads(v)) for v in read_all(kafka_service.bootstrap, topics.raw)]
    aggregates = [aggregate_from_dict(json.loads(v)) for v in read_all(kafka_service.bootstrap, topics.aggregates)]
    late = [late_from_dict(json.loads(v)) for v in read_all(kafka_service.bootstrap, topics.late)]
    dead = [deadletter_from_dict(json.loads(v)) for v in read_all(kafka_service.bootstrap, topics.deadletter)]
    assert {r.site for r in raw} == {"a", "b"}
    assert {a.kind for a in aggregates} == {"AggDay", "AggDayDiff", "AggDayRest", "AggDayMov"}
    assert any(a.revision > 1 for a in aggregates)  # late W1 readings revised closed days
    # an AggDay sum is the sum of that day's readings the feed wrote (checked for one series, independently)
    first = next(a for a in aggregates if a.name == "AggDay[HVAC1]" and a.site == "a" and a.revision == 1)
    day_values = [r.value for r in raw if r.site == "a" and r.sensor == "HVAC1" and first.window_start < r.ts
                  <= first.window_end]
    assert first.value == pytest.approx(sum(day_values), abs=0.01)
    assert len(late) == 2 * (500 // 120) and len(dead) == 1
