"""Benchmark: rows/s from Kafka into HBase with ONE sync worker, against a row-at-a-time baseline in the same run.

Both read the same pre-produced readings (a ``<prefix>.raw`` topic, 4 partitions) from the same Kafka and write into
the same HBase through Thrift, each into its own tables:
  * worker:   hbase_sync's Worker (batched happybase mutations, commit after the write), in this process;
  * baseline: what the original did: one ``put`` per message, auto-commit, polling one message at a time.
The baseline reads only the first ``--baseline-rows`` messages (it is slow); rates are rows / elapsed from the first
record received to the last row written. Both results are checked by counting the rows in HBase. After an unmeasured
warm-up, worker and baseline runs alternate ``--repeat`` times (the machine is shared and noisy); medians count.

Starts its own Kafka + HBase (free loopback ports, temporary home) unless --bootstrap/--thrift-port are given.
Prints figures and the ratio, then ONE JSON line. Smallest run (a check that it works, not a measurement):
``--rows 20000 --baseline-rows 1000 --repeat 1 --no-warmup``.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import backpressure
import happybase
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from hbase_sync.backoff import Backoff
from hbase_sync.batching import BatchPolicy
from hbase_sync.mapping import Mapper
from hbase_sync.store import HBaseStore, ShardedStore
from hbase_sync.worker import Worker
from iotcommon.days import iso_z
from iotcommon.hbase_layout import reading_key
from iotcommon.messages import Reading
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics

PARTITIONS = 4
SITES = 50
TARGET_ROWS_S = 20_000
TARGET_RATIO = 20.0
START_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
STEP_SENSORS = [s for s in SENSORS.values() if s.every_15_min]


@contextmanager
def services(args: argparse.Namespace) -> Iterator[tuple[str, str, int]]:
    if args.bootstrap and args.thrift_port:
        yield args.bootstrap, args.thrift_host, args.thrift_port
        return
    from own_stack import own_stack

    with own_stack("bench-sync-", ["kafka", "hbase", "thrift"]) as settings:
        yield settings.bootstrap, settings.host, settings.thrift_port


def produce(bootstrap: str, topics: Topics, rows: int) -> list[bytes]:
    topic = topics.raw
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in topics.all()])
        wait(futures.values())  # every request answered before the block destroys the client
        for fut in futures.values():
            fut.result()
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    payloads = []
    for i in range(rows):
        payload, key = reading(i)
        payloads.append(payload)
        backpressure.produce(producer, topic, payload, key)
    backpressure.flush(producer, "producing the readings")
    return payloads


def reading(i: int) -> tuple[bytes, bytes]:
    """The i-th reading (payload, Kafka key). i -> (sensor, site, step) is one-to-one: every reading is a distinct
    row, 15 minutes of event time after the previous step of its device, from 2020-01-01T00:00Z on."""
    sensor = STEP_SENSORS[i % len(STEP_SENSORS)]
    site = f"site{i // len(STEP_SENSORS) % SITES:02d}"
    step = i // (len(STEP_SENSORS) * SITES)
    ts = iso_z(datetime.fromtimestamp((START_MS + step * 900_000) / 1000, UTC))
    payload = Reading(site, sensor.name, ts, float(i % 997) / 10, sensor.unit, step).encode()
    return payload, f"{site}/{sensor.name}".encode()


def count_rows(host: str, port: int, prefix: str) -> int:
    conn = happybase.Connection(host, port, table_prefix=prefix, timeout=120_000)
    try:
        return sum(1 for _ in conn.table("raw").scan(filter=b"KeyOnlyFilter()", batch_size=5000))
    finally:
        conn.close()


class TimedConsumer:
    """The worker's consumer: the real one, noting when the first records arrived; ``on_commit`` runs after each
    commit (the worker commits a batch's offsets only after its rows are written)."""

    def __init__(self, consumer: Any) -> None:
        self._consumer = consumer
        self.first: float | None = None
        self.on_commit: Callable[[], None] = lambda: None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> Any:
        got = self._consumer.consume(num_messages=num_messages, timeout=timeout)
        if got and self.first is None:
            self.first = time.perf_counter()
        return got

    def commit(self, *, offsets: Any, asynchronous: bool) -> Any:
        answer = self._consumer.commit(offsets=offsets, asynchronous=asynchronous)
        self.on_commit()
        return answer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._consumer, name)


def timed_run(consumer: Any, store: Any, topics: Topics, rows: int, batch_size: int) -> dict[str, Any]:
    """Run hbase_sync's Worker over ``consumer`` into ``store`` until ``rows`` rows are written and committed.
    Rate: rows / seconds from the first record received to the commit that covers the last row."""
    stop = threading.Event()
    timed = TimedConsumer(consumer)
    worker = Worker(timed, store, Mapper(topics), BatchPolicy(batch_size, 0.5), Backoff(0.2, 5.0), retries=5,
                    stop=stop)
    last: list[float] = []

    def committed() -> None:
        if worker.progress.total_written >= rows and not last:
            last.append(time.perf_counter())
            stop.set()

    timed.on_commit = committed
    cpu0 = time.process_time()
    worker.run()
    cpu = time.process_time() - cpu0
    if timed.first is None or not last:
        raise SystemExit(f"the worker stopped after {worker.progress.total_written} of {rows} rows")
    elapsed = max(last[0] - timed.first, 1e-9)
    written = worker.progress.total_written
    return {"rows": written, "seconds": elapsed, "rows_per_s": written / elapsed, "batches": worker.commits.batches,
            "cpu_s": cpu}


def run_worker(bootstrap: str, host: str, port: int, topics: Topics, table_prefix: str, rows: int,
               batch_size: int, writers: int) -> dict[str, Any]:
    store = ShardedStore([HBaseStore(host, port, table_prefix, timeout_ms=60_000) for _ in range(writers)])
    store.check()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "partition.assignment.strategy": "cooperative-sticky"})
    return timed_run(consumer, store, topics, rows, batch_size)


def run_baseline(bootstrap: str, host: str, port: int, topic: str, table_prefix: str, rows: int) -> dict[str, Any]:
    """The original's loop: poll one message, one put, auto-commit (librdkafka's default 5 s interval)."""
    conn = happybase.Connection(host, port, table_prefix=table_prefix, timeout=60_000)
    conn.create_table("raw", {"d": {"max_versions": 1}})
    table = conn.table("raw")
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"baseline-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    done, first = 0, None
    while done < rows:
        msg = consumer.poll(1.0)
        if msg is None or msg.error():
            continue
        if first is None:
            first = time.perf_counter()
        value = msg.value() or b""
        obj = json.loads(value)
        ts_ms = int(datetime.fromisoformat(obj["ts"]).timestamp() * 1000)
        table.put(reading_key(obj["site"], obj["sensor"], ts_ms, obj["seq"]), {b"d:m": value})
        done += 1
    elapsed = time.perf_counter() - (first or 0.0)
    consumer.close()
    conn.close()
    return {"rows": done, "seconds": elapsed, "rows_per_s": done / elapsed}


def figures(workers: list[dict[str, Any]], bases: list[dict[str, Any]], rows: int, baseline_rows: int,
            batch_size: int, writers: int) -> dict[str, Any]:
    """The JSON line: medians of the runs, their ratio, and whether every run's rows all reached HBase."""
    worker_rate = statistics.median(w["rows_per_s"] for w in workers)
    base_rate = statistics.median(b["rows_per_s"] for b in bases)
    complete = all(w["rows_in_hbase"] == rows for w in workers) and all(
        b["rows_in_hbase"] == baseline_rows for b in bases)
    ratio = worker_rate / base_rate
    return {
        "bench": "sync", "worker_rows_per_s": round(worker_rate), "baseline_rows_per_s": round(base_rate),
        "ratio": round(ratio, 2), "worker_runs_rows_per_s": [round(w["rows_per_s"]) for w in workers],
        "baseline_runs_rows_per_s": [round(b["rows_per_s"]) for b in bases], "rows_per_worker_run": rows,
        "rows_per_baseline_run": baseline_rows, "all_rows_in_hbase": complete, "batch_size": batch_size,
        "writers": writers,
        "targets_met": complete and worker_rate >= TARGET_ROWS_S and ratio >= TARGET_RATIO,
    }


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=positive, default=300_000, help="readings per worker run")
    parser.add_argument("--baseline-rows", type=positive, default=5_000, help="readings per baseline run")
    parser.add_argument("--repeat", type=positive, default=3,
                        help="worker and baseline runs, interleaved; medians count")
    parser.add_argument("--warmup", action=argparse.BooleanOptionalAction, default=True,
                        help="one unmeasured worker run and a short baseline run first")
    parser.add_argument("--batch-size", type=positive, default=5000, help="worker rows per flush")
    parser.add_argument("--writers", type=positive, default=2, help="worker Thrift connections per batch")
    parser.add_argument("--bootstrap", default="", help="use this Kafka instead of starting one")
    parser.add_argument("--thrift-host", default="127.0.0.1")
    parser.add_argument("--thrift-port", type=int, default=0, help="use this HBase Thrift server")
    args = parser.parse_args(argv)
    if args.baseline_rows > args.rows:  # the baseline reads the first --baseline-rows of the --rows produced
        parser.error(f"--baseline-rows ({args.baseline_rows}) must not exceed --rows ({args.rows})")
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_id = uuid.uuid4().hex[:8]
    topics = Topics(f"bench{run_id}")
    workers: list[dict[str, Any]] = []
    bases: list[dict[str, Any]] = []
    with services(args) as (bootstrap, host, port):
        print(f"producing {args.rows} readings to {topics.raw} ({PARTITIONS} partitions) ...", flush=True)
        produce(bootstrap, topics, args.rows)
        if args.warmup:  # JIT and caches of the JVMs and of this process, not measured
            run_worker(bootstrap, host, port, topics, f"bench{run_id}warm", args.rows, args.batch_size, args.writers)
            run_baseline(bootstrap, host, port, topics.raw, f"bench{run_id}bwarm", min(args.baseline_rows, 1000))
            print("warm-up done (one worker run and 1000 baseline rows, not counted)", flush=True)
        # interleaved, so both see the same (shared, noisy) machine; each run reads the topic with a fresh group
        # into fresh tables
        for i in range(args.repeat):
            w = run_worker(bootstrap, host, port, topics, f"bench{run_id}w{i}", args.rows, args.batch_size,
                           args.writers)
            w["rows_in_hbase"] = count_rows(host, port, f"bench{run_id}w{i}")
            workers.append(w)
            print(f"worker   run {i + 1}: {w['rows']} rows in {w['seconds']:.2f} s = {w['rows_per_s']:,.0f} rows/s "
                  f"({w['batches']} batches; {w['rows_in_hbase']} rows in HBase; CPU {w['cpu_s']:.1f} s)", flush=True)
            b = run_baseline(bootstrap, host, port, topics.raw, f"bench{run_id}b{i}", args.baseline_rows)
            b["rows_in_hbase"] = count_rows(host, port, f"bench{run_id}b{i}")
            bases.append(b)
            print(f"baseline run {i + 1}: {b['rows']} rows in {b['seconds']:.2f} s = {b['rows_per_s']:,.0f} rows/s "
                  f"({b['rows_in_hbase']} rows in HBase)", flush=True)
    out = figures(workers, bases, args.rows, args.baseline_rows, args.batch_size, args.writers)
    print(f"median: worker {out['worker_rows_per_s']:,} rows/s (one worker, batch {args.batch_size}, {args.writers} "
          f"writers) vs baseline {out['baseline_rows_per_s']:,} rows/s (one put per message, auto-commit): ratio "
          f"{out['ratio']:.1f}x; targets >= {TARGET_ROWS_S:,} rows/s and >= {TARGET_RATIO:.0f}x: "
          f"{'met' if out['targets_met'] else 'NOT met'}", flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
