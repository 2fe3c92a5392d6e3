"""Against the REAL Kafka and HBase (Thrift1): every record of the input topics ends up in HBase exactly once, with
its content; aborted transactions never do; the tables are created once and never wiped."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sync_helpers import (
    TxProducer,
    WorkerProcess,
    assert_exactly,
    count_rows,
    create_topics,
    enc,
    garbage,
    group_lag,
    http_get,
    read_tables,
    reading,
    topic_names,
    wait_until,
    worker_env,
    workers,
    workload,
)

from iotpipe_stack.testing import HBaseService, KafkaService

pytestmark = [pytest.mark.kafka, pytest.mark.hbase, pytest.mark.slow]

PARTITIONS = 3


def test_every_input_record_lands_in_hbase_exactly_once_with_its_content(
    kafka_service: KafkaService, hbase_service: HBaseService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    prefix, tables, group = unique_name("once"), unique_name("once_t"), unique_name("once_g")
    create_topics(kafka_service.bootstrap, topic_names(prefix), PARTITIONS)
    records, expected = workload(prefix, sites=4, steps=40)
    producer = TxProducer(kafka_service.bootstrap, unique_name("tx"))
    producer.send(records[: len(records) // 2])
    # an aborted transaction: read_committed must never show these to the worker
    producer.send([(f"{prefix}.raw", b"x/TH1", enc(reading("aborted", "TH1", s, 1.0))) for s in range(20)],
                  commit=False)
    producer.send(records[len(records) // 2 :])
    bad = garbage(prefix, 5)  # not JSON: each must become a dead letter, keyed by where it was, with its bytes
    for (topic, part, off), (_, _, payload) in zip(producer.send(bad), bad, strict=True):
        expected.rejected[(topic, part, off)] = ("unparsable", payload or b"")

    env = worker_env(kafka_service.bootstrap, hbase_service, prefix, tables, group)
    with workers(WorkerProcess(env, tmp_path / "worker.log").start()) as (worker,):
        wait_until("the worker committed every record",
                   lambda: group_lag(kafka_service.bootstrap, group, topic_names(prefix), PARTITIONS) == 0,
                   context=worker.log)
        assert worker.terminate() == 0, worker.log()
    assert_exactly(expected, read_tables(hbase_service, tables))
    assert "stopped:" in worker.log()


def test_a_restart_creates_no_tables_and_keeps_the_data(
    kafka_service: KafkaService, hbase_service: HBaseService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    prefix, tables, group = unique_name("keep"), unique_name("keep_t"), unique_name("keep_g")
    create_topics(kafka_service.bootstrap, topic_names(prefix), 1)
    records, expected = workload(prefix, sites=1, steps=10)
    TxProducer(kafka_service.bootstrap, unique_name("tx")).send(records)
    env = worker_env(kafka_service.bootstrap, hbase_service, prefix, tables, group)
    env["IOTPIPE_SYNC_TTL_LATE"] = "86400"
    for run in range(2):
        with workers(WorkerProcess(env, tmp_path / f"worker{run}.log").start()) as (worker,):
            wait_until("the worker subscribed", lambda: "subscribed to" in worker.log(), context=worker.log)
            wait_until("all rows", lambda: count_rows(hbase_service, tables) == expected.count(), context=worker.log)
            assert worker.terminate() == 0, worker.log()
        log = worker.log()
        assert ("created table" in log) == (run == 0), log
    assert_exactly(expected, read_tables(hbase_service, tables))
    conn = hbase_service.connection(table_prefix=tables)
    try:
        families = {t: conn.table(t).families()[b"d"] for t in ("raw", "late")}
    finally:
        conn.close()
    assert families["late"]["time_to_live"] == 86400
    assert families["raw"]["max_versions"] == 1
    assert families["raw"]["block_cache_enabled"] is True
    assert families["raw"]["time_to_live"] == 2**31 - 1  # HBase's "forever"


def test_the_http_endpoints_report_health_and_metrics(
    kafka_service: KafkaService, hbase_service: HBaseService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    import re

    prefix, tables, group = unique_name("http"), unique_name("http_t"), unique_name("http_g")
    create_topics(kafka_service.bootstrap, topic_names(prefix), 1)
    records, expected = workload(prefix, sites=1, steps=5)
    TxProducer(kafka_service.bootstrap, unique_name("tx")).send(records)
    env = worker_env(kafka_service.bootstrap, hbase_service, prefix, tables, group)
    with workers(WorkerProcess(env, tmp_path / "worker.log").start()) as (worker,):
        wait_until("the http line", lambda: "http: " in worker.log(), context=worker.log)
        port = int(re.search(r"http: .* on [\d.]+:(\d+)", worker.log()).group(1))  # type: ignore[union-attr]
        wait_until("all rows", lambda: count_rows(hbase_service, tables) == expected.count(), context=worker.log)
        base = f"http://127.0.0.1:{port}"
        assert json.loads(http_get(f"{base}/healthz"))["alive"] is True
        assert json.loads(http_get(f"{base}/readyz"))["state"] == "running"

        def metrics() -> str:
            return http_get(f"{base}/metrics")

        wait_until("the lag gauge", lambda: "iotpipe_sync_lag{" in metrics(), context=metrics)
        text = metrics()
        assert worker.terminate() == 0
    written = sum(float(v) for v in re.findall(r'^iotpipe_sync_written_total\{table="\w+"\} (\S+)$', text, re.M))
    assert written == expected.count()
    assert re.search(r'^iotpipe_sync_consumed_total\{topic="[^"]+\.raw"\} (\S+)$', text, re.M)
    assert re.search(r"^iotpipe_sync_batches_total (\S+)$", text, re.M)
    assert "iotpipe_sync_errors_total" in text or "iotpipe_sync_errors" in text
