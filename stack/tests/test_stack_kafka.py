"""Real Kafka (KRaft) through confluent-kafka: what goes in comes out, also across a broker restart."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from iotpipe_stack.testing import KafkaService

pytestmark = pytest.mark.kafka


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                      request_timeout=60)
        futures[topic].result()  # the only request: answered (or timed out) before the block destroys the client


def produce(bootstrap: str, topic: str, records: list[tuple[str, str]]) -> None:
    with Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True}) as producer:
        for key, value in records:
            producer.produce(topic, key=key.encode(), value=value.encode())
        assert producer.flush(60) == 0


def consume_all(bootstrap: str, topic: str, expected_count: int, group: str) -> list[tuple[str, str]]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    got: list[tuple[str, str]] = []
    try:
        for _ in range(600):  # bounded: at most ~600 polls of 0.5 s
            msg = consumer.poll(0.5)
            if msg is None:
                if len(got) >= expected_count:
                    break
                continue
            assert msg.error() is None, msg.error()
            got.append((msg.key().decode(), msg.value().decode()))
    finally:
        consumer.close()
    return got


def test_produced_records_are_consumed_in_order(kafka_service: KafkaService, unique_name: Callable[[str], str]) -> None:
    topic = unique_name("smoke")
    create_topic(kafka_service.bootstrap, topic)
    records = [(f"dev-{i % 3}", f"reading-{i}") for i in range(50)]

    produce(kafka_service.bootstrap, topic, records)

    assert consume_all(kafka_service.bootstrap, topic, len(records), unique_name("g")) == records


def test_records_survive_a_broker_restart(kafka_service: KafkaService, unique_name: Callable[[str], str]) -> None:
    topic = unique_name("restart")
    create_topic(kafka_service.bootstrap, topic)
    before = [("k", f"before-{i}") for i in range(10)]
    produce(kafka_service.bootstrap, topic, before)

    kafka_service.stop()
    assert not kafka_service.is_ready()
    kafka_service.start()
    assert kafka_service.is_ready()

    after = [("k", f"after-{i}") for i in range(5)]
    produce(kafka_service.bootstrap, topic, after)
    assert consume_all(kafka_service.bootstrap, topic, 15, unique_name("g")) == before + after
