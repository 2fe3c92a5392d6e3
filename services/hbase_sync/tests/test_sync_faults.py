"""Faults, against the REAL Kafka and HBase: the worker killed with SIGKILL mid-stream and restarted, and the Thrift
server stopped for 30 s mid-stream. Afterwards HBase holds every expected row once, with its content."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sync_helpers import (
    Trickle,
    TxProducer,
    WorkerProcess,
    assert_exactly,
    committed,
    count_rows,
    create_topics,
    group_lag,
    read_tables,
    topic_names,
    wait_until,
    worker_env,
    workers,
    workload,
)

from iotpipe_stack.testing import HBaseService, KafkaService

pytestmark = [pytest.mark.kafka, pytest.mark.hbase, pytest.mark.slow]

PARTITIONS = 3
OUTAGE_S = 30  # what the scenario asks for: Thrift down for 30 s while records keep coming


def test_kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_nothing(
    kafka_service: KafkaService, hbase_service: HBaseService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    prefix, tables, group = unique_name("kill"), unique_name("kill_t"), unique_name("kill_g")
    create_topics(kafka_service.bootstrap, topic_names(prefix), PARTITIONS)
    records, expected = workload(prefix, sites=8, steps=250)
    half = len(records) // 2
    producer = TxProducer(kafka_service.bootstrap, unique_name("tx"))
    before_kill = Trickle(producer, records[:half], batches=30, pause=0.2)
    after_kill = Trickle(producer, records[half:], batches=30, pause=0.2)
    env = worker_env(kafka_service.bootstrap, hbase_service, prefix, tables, group)
    first = WorkerProcess(env, tmp_path / "worker1.log").start()
    second = WorkerProcess(env, tmp_path / "worker2.log")
    with workers(first, second):
        before_kill.start()
        wait_until("the first worker wrote some rows", lambda: count_rows(hbase_service, tables) > 1000,
                   context=first.log)
        first.kill9()  # no flush, no commit, no goodbye to the group
        at_kill = count_rows(hbase_service, tables)
        before_kill.join(300)
        after_kill.start()  # the stream goes on while no worker runs, and after the restart
        second.start()
        after_kill.join(300)
        assert before_kill.error is None and after_kill.error is None
        assert before_kill.sent + after_kill.sent == len(records)
        assert 0 < at_kill < expected.count()
        wait_until("the restarted worker committed everything",
                   lambda: group_lag(kafka_service.bootstrap, group, topic_names(prefix), PARTITIONS) == 0,
                   context=second.log)
        assert second.terminate() == 0, second.log()
    assert_exactly(expected, read_tables(hbase_service, tables))


def test_thrift_down_for_30_s_mid_stream_loses_nothing(
    kafka_service: KafkaService, hbase_service: HBaseService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    prefix, tables, group = unique_name("outage"), unique_name("outage_t"), unique_name("outage_g")
    create_topics(kafka_service.bootstrap, topic_names(prefix), PARTITIONS)
    records, expected = workload(prefix, sites=6, steps=250)
    third = len(records) // 3
    producer = TxProducer(kafka_service.bootstrap, unique_name("tx"))
    before = Trickle(producer, records[:third], batches=20, pause=0.2)
    during = Trickle(producer, records[third:], batches=40, pause=0.5)  # ~20 s: arriving while Thrift is down
    env = worker_env(kafka_service.bootstrap, hbase_service, prefix, tables, group)
    topics = topic_names(prefix)
    with workers(WorkerProcess(env, tmp_path / "worker.log").start()) as (worker,):
        before.start()
        wait_until("the worker wrote some rows", lambda: count_rows(hbase_service, tables) > 500, context=worker.log)
        before.join(300)
        hbase_service.stop_thrift()
        try:
            during.start()
            time.sleep(5)  # the worker has met the outage by now: records keep coming, its writes fail
            committed_early = committed(kafka_service.bootstrap, group, topics, PARTITIONS)
            time.sleep(OUTAGE_S - 5)
            committed_late = committed(kafka_service.bootstrap, group, topics, PARTITIONS)
            sent_during_outage = during.sent
        finally:
            hbase_service.start_thrift()
        assert sent_during_outage > 0
        assert committed_early == committed_late, "nothing may be committed while HBase cannot be written"
        during.join(300)
        assert before.error is None and during.error is None
        assert before.sent + during.sent == len(records)
        wait_until("the worker caught up after the outage",
                   lambda: group_lag(kafka_service.bootstrap, group, topics, PARTITIONS) == 0, context=worker.log)
        assert worker.terminate() == 0, worker.log()
    log = worker.log()
    assert "Consumption paused" in log and "HBase is back" in log, log[-4000:]
    assert_exactly(expected, read_tables(hbase_service, tables))
