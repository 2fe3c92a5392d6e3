"""Joining the consumer group against the REAL Kafka and HBase, in the order of the local stack (`iotpipe run` starts
the sync worker before the stream job makes its output topics): a worker subscribed to topics that do not exist yet
joins its group once they do, without the join watchdog, and writes every record once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sync_helpers import (
    TxProducer,
    WorkerProcess,
    assert_exactly,
    assignment_from_log,
    create_topics,
    group_lag,
    read_tables,
    wait_until,
    worker_env,
    workers,
    workload,
)

from iotpipe_stack.testing import HBaseService, KafkaService

pytestmark = [pytest.mark.kafka, pytest.mark.hbase, pytest.mark.slow]

PARTITIONS = 2


def test_a_worker_subscribed_before_its_topics_exist_joins_once_they_are_made(
    kafka_service: KafkaService, hbase_service: HBaseService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    prefix, tables, group = unique_name("early"), unique_name("early_t"), unique_name("early_g")
    topics = [f"{prefix}.{t}" for t in ("raw", "aggregates", "late", "deadletter")]
    records, expected = workload(prefix, sites=2, steps=30)
    worker = WorkerProcess(worker_env(kafka_service.bootstrap, hbase_service, prefix, tables, group),
                           tmp_path / "worker.log")  # fmt: skip
    with workers(worker):
        worker.start()
        wait_until("the worker subscribed (its topics do not exist yet)", lambda: "subscribed to" in worker.log(),
                   context=worker.log)  # fmt: skip
        create_topics(kafka_service.bootstrap, topics, PARTITIONS)
        wait_until("the worker holds every partition",
                   lambda: assignment_from_log(worker.log()) == {(t, p) for t in topics for p in range(PARTITIONS)},
                   context=worker.log)  # fmt: skip
        TxProducer(kafka_service.bootstrap, unique_name("tx")).send(records)
        wait_until("the group committed everything",
                   lambda: group_lag(kafka_service.bootstrap, group, topics, PARTITIONS) == 0, context=worker.log)
        assert worker.terminate() == 0, worker.log()
    assert "no partition assigned" not in worker.log()  # joined by itself: the watchdog had nothing to do
    assert_exactly(expected, read_tables(hbase_service, tables))
