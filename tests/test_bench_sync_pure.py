"""bench/bench_sync.py without services: its readings, its figures, and its timed worker run against the sync
worker's FAKE consumer and store (services/hbase_sync/tests/sync_fakes.py, in memory). The last one drives the
real ``hbase_sync.worker.Worker`` the way the bench does, so a change of the worker's API that the bench does not
follow fails here, not in the next benchmark run. Expected values are worked out by hand in each test."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services" / "hbase_sync" / "tests"))

import bench_sync
from sync_fakes import FakeConsumer, FakeStore

from iotcommon.topics import Topics


def test_each_reading_is_a_distinct_row_of_its_own_device_15_minutes_after_the_previous_one() -> None:
    sensors = len(bench_sync.STEP_SENSORS)
    per_step = sensors * bench_sync.SITES
    first = json.loads(bench_sync.reading(0)[0])
    assert (first["site"], first["seq"], first["ts"]) == ("site00", 0, "2020-01-01T00:00:00Z")
    assert bench_sync.reading(0)[1] == f"site00/{first['sensor']}".encode()
    # the next site after one reading of every sensor; the same device again one step (15 min) later
    assert json.loads(bench_sync.reading(sensors)[0])["site"] == "site01"
    again = json.loads(bench_sync.reading(per_step)[0])
    assert (again["site"], again["sensor"], again["seq"], again["ts"]) == (
        "site00", first["sensor"], 1, "2020-01-01T00:15:00Z")
    n = 2 * per_step + 7
    ids = {(r["site"], r["sensor"], r["seq"]) for r in (json.loads(bench_sync.reading(i)[0]) for i in range(n))}
    assert len(ids) == n


def test_figures_are_the_medians_of_the_runs_and_their_ratio() -> None:
    workers = [{"rows_per_s": r, "rows_in_hbase": 100} for r in (30_000.0, 10_000.0, 20_000.0)]
    bases = [{"rows_per_s": r, "rows_in_hbase": 10} for r in (900.0, 1100.0, 1000.0)]
    out = bench_sync.figures(workers, bases, rows=100, baseline_rows=10, batch_size=500, writers=2)
    assert (out["worker_rows_per_s"], out["baseline_rows_per_s"], out["ratio"]) == (20_000, 1000, 20.0)
    assert out["worker_runs_rows_per_s"] == [30_000, 10_000, 20_000]
    assert out["all_rows_in_hbase"] is True and out["targets_met"] is True  # 20,000 rows/s and 20x: both met
    bases[0]["rows_in_hbase"] = 9  # one baseline row missing in HBase: incomplete, targets not met
    out = bench_sync.figures(workers, bases, rows=100, baseline_rows=10, batch_size=500, writers=2)
    assert out["all_rows_in_hbase"] is False and out["targets_met"] is False
    json.dumps(out)  # one JSON line


def test_the_timed_run_drives_the_worker_until_every_row_is_written_and_committed() -> None:
    topics = Topics("benchtest")
    # 4 partitions as the bench's topic, 103 readings spread round-robin
    logs: dict[tuple[str, int], list[bytes | None]] = {(topics.raw, p): [] for p in range(4)}
    for i in range(103):
        logs[(topics.raw, i % 4)].append(bench_sync.reading(i)[0])
    consumer, store = FakeConsumer(logs), FakeStore()
    result = bench_sync.timed_run(consumer, store, topics, rows=103, batch_size=10)
    assert result["rows"] == 103 and len(store.tables["raw"]) == 103
    assert result["batches"] >= 103 // 10  # at most 10 rows a batch
    assert result["seconds"] > 0 and result["rows_per_s"] == result["rows"] / result["seconds"]
    assert consumer.committed == {(topics.raw, 0): 26, (topics.raw, 1): 26, (topics.raw, 2): 26, (topics.raw, 3): 25}
    assert consumer.closed and store.closed
