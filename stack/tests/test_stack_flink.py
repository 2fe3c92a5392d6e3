"""Real PyFlink (the .venv-flink runtime) with the Kafka connector: a bounded job copies one topic to another."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import wait
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from iotpipe_stack.testing import FlinkRuntime, KafkaService

pytestmark = [pytest.mark.flink, pytest.mark.kafka, pytest.mark.slow]

JOB = Path(__file__).with_name("flink_copy_job.py")


def test_pyflink_job_reads_one_topic_and_writes_another(
    kafka_service: KafkaService, flink_runtime: FlinkRuntime, unique_name: Callable[[str], str]
) -> None:
    source, sink = unique_name("flink_in"), unique_name("flink_out")
    with AdminClient({"bootstrap.servers": kafka_service.bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(t, 1, 1) for t in (source, sink)], request_timeout=60)
        wait(futures.values())  # every request answered before the block destroys the client
        for fut in futures.values():
            fut.result()
    values = [f"device-{i}:{i * 7}" for i in range(20)]
    with Producer({"bootstrap.servers": kafka_service.bootstrap}) as producer:  # destroyed here, not by the GC
        for v in values:
            producer.produce(source, value=v.encode())
        assert producer.flush(60) == 0

    proc = flink_runtime.run(
        [str(JOB), "--bootstrap", kafka_service.bootstrap, "--source", source, "--sink", sink,
         "--jar", flink_runtime.connector_jar_url],
        timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"job failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"

    consumer = Consumer(
        {"bootstrap.servers": kafka_service.bootstrap, "group.id": unique_name("g"), "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([sink])
    got: list[str] = []
    try:
        for _ in range(240):
            msg = consumer.poll(0.5)
            if msg is None:
                if len(got) >= len(values):
                    break
                continue
            assert msg.error() is None, msg.error()
            got.append(msg.value().decode())
    finally:
        consumer.close()
    assert got == [v.upper() for v in values]
