"""Two workers in one consumer group, against the REAL Kafka and HBase: they split the partitions and together
write every record once."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sync_helpers import (
    Trickle,
    TxProducer,
    WorkerProcess,
    assert_exactly,
    assignment_from_log,
    create_topics,
    group_lag,
    read_tables,
    rows_written_from_log,
    wait_until,
    worker_env,
    workers,
    workload,
)

from iotpipe_stack.testing import HBaseService, KafkaService

pytestmark = [pytest.mark.kafka, pytest.mark.hbase, pytest.mark.slow]

PARTITIONS = 4


def split(a: WorkerProcess, b: WorkerProcess, every: set[tuple[str, int]]) -> bool:
    """Both hold partitions, none twice, all of them between the two."""
    held_a, held_b = assignment_from_log(a.log()), assignment_from_log(b.log())
    return bool(held_a) and bool(held_b) and not held_a & held_b and held_a | held_b == every


def test_two_workers_split_the_partitions_and_together_write_everything_once(
    kafka_service: KafkaService, hbase_service: HBaseService, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    prefix, tables, group = unique_name("pair"), unique_name("pair_t"), unique_name("pair_g")
    topics = [f"{prefix}.{t}" for t in ("raw", "aggregates", "late", "deadletter")]
    create_topics(kafka_service.bootstrap, topics, PARTITIONS)
    every = {(t, p) for t in topics for p in range(PARTITIONS)}
    records, expected = workload(prefix, sites=8, steps=120)
    env = worker_env(kafka_service.bootstrap, hbase_service, prefix, tables, group)
    a = WorkerProcess(env, tmp_path / "a.log")
    b = WorkerProcess(env, tmp_path / "b.log")
    with workers(a, b):
        a.start()
        wait_until("worker A holds every partition", lambda: assignment_from_log(a.log()) == every, context=a.log)
        b.start()
        wait_until("the partitions are split between A and B", lambda: split(a, b, every),
                   context=lambda: a.log()[-2000:] + "\n----\n" + b.log()[-2000:])
        stream = Trickle(TxProducer(kafka_service.bootstrap, unique_name("tx")), records, batches=20, pause=0.1)
        stream.start()
        stream.join(300)
        assert stream.error is None and stream.sent == len(records)
        wait_until("the group committed everything",
                   lambda: group_lag(kafka_service.bootstrap, group, topics, PARTITIONS) == 0,
                   context=lambda: a.log()[-2000:] + "\n----\n" + b.log()[-2000:])
        assert split(a, b, every)
        assert b.terminate() == 0, b.log()
        assert a.terminate() == 0, a.log()
    written_a, written_b = rows_written_from_log(a.log()), rows_written_from_log(b.log())
    assert written_a > 0 and written_b > 0, (written_a, written_b)
    assert_exactly(expected, read_tables(hbase_service, tables))
