"""Benchmark of the device simulators: readings/s produced to a local Kafka broker in as-fast-as-possible mode.

Baseline, measured in the same run against the same broker: confluent-kafka's raw produce rate for messages of the
same size (the very payloads and keys the simulator produced, pre-built in memory) with the same producer settings
(idempotent, acks=all, lz4, linger, batch size). Both rates count until every message is acknowledged (flush).
Rounds alternate raw / simulator to even out the noise of a shared machine; the best round of each is reported.
Also reported: generation + encoding alone (no Kafka).

Targets (issue 3): >= 100,000 readings/s from one process, and >= 50 % of the raw produce rate.

Usage: python bench/bench_simulators.py [--bootstrap HOST:PORT] [--sites 500] [--steps 300] [--rounds 2]
Without --bootstrap a private broker is started with the project's local stack (temporary home) and stopped after.
Ends with one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

import backpressure
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from iot_simulators.config import SimConfig, plan
from iot_simulators.producer import KafkaSink, producer_config
from iot_simulators.runner import run, site_groups
from iotcommon.config import from_values

TARGET_RATE = 100_000.0
TARGET_RATIO = 0.5
PARTITIONS = 6


def log(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def config(bootstrap: str, prefix: str, sites: int, steps: int) -> SimConfig:
    return from_values(SimConfig, {"bootstrap": bootstrap, "topic_prefix": prefix, "sites": sites, "steps": steps,
                                   "speed": "max", "progress_s": 3600, "create_topic": False}, {})


def create(bootstrap: str, topic: str) -> None:
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)],
                            request_timeout=60)[topic].result()


def generation_only(cfg: SimConfig) -> tuple[int, float, list[tuple[bytes, bytes]]]:
    """Generate + encode without Kafka; also returns the (key, payload) pairs for the raw baseline."""
    p = plan(cfg, {})
    (group,) = site_groups(p, cfg.seed)  # one zone
    sim, enc = group.sim, group.encoder
    pairs: list[tuple[bytes, bytes]] = []
    keep = pairs.append
    t0 = time.perf_counter()
    n = 0
    for out in sim.run(p.stop):
        n += enc.emit_step(out, "", lambda _t, v, k: keep((k, v)), lambda: None)
    for block in sim.drain():
        n += enc.emit_block(block, "", lambda _t, v, k: keep((k, v)), lambda: None)
    return n, time.perf_counter() - t0, pairs


def simulator_round(cfg: SimConfig) -> tuple[int, float]:
    p = plan(cfg, {})
    create(cfg.bootstrap, p.topic)
    sink = KafkaSink(cfg)
    sink.connect(p.topic)
    groups = site_groups(p, cfg.seed)
    t0 = time.perf_counter()
    res = run(p, groups, sink, threading.Event(), progress_s=3600, flush_timeout_s=300, clock=time.monotonic)
    dt = time.perf_counter() - t0
    if not res.ok:
        raise SystemExit(f"simulator round failed: {res.error}")
    return res.produced, dt


def raw_round(cfg: SimConfig, topic: str, pairs: list[tuple[bytes, bytes]]) -> tuple[int, float]:
    create(cfg.bootstrap, topic)
    producer = Producer(producer_config(cfg))
    producer.list_topics(topic, timeout=30)  # connected, like the simulator after connect()
    produce, poll = producer.produce, producer.poll
    t0 = time.perf_counter()
    for i, (key, value) in enumerate(pairs):
        try:
            produce(topic, value, key)
        except BufferError:  # queue full: wait for room, however long the broker takes (never die on backpressure)
            backpressure.produce(producer, topic, value, key)
        if i % 5000 == 0:
            poll(0)
    backpressure.flush(producer, "raw round")
    dt = time.perf_counter() - t0
    return len(pairs), dt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bootstrap", default=os.environ.get("IOTPIPE_BENCH_BOOTSTRAP", ""),
                    help="use this broker instead of starting a private one")
    ap.add_argument("--sites", type=int, default=500)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    stack = None
    bootstrap = args.bootstrap
    if not bootstrap:
        from iotpipe_stack.ports import free_ports
        from iotpipe_stack.settings import resolve
        from iotpipe_stack.stack import LocalStack

        home = Path(tempfile.mkdtemp(prefix="bench-sim-"))
        k, c, z, t = free_ports(4)
        settings = resolve(os.environ, {"home": str(home)}).replace(kafka_port=k, kafka_controller_port=c,
                                                                    zk_port=z, thrift_port=t)
        stack = LocalStack(settings, progress=lambda m: log(f"  {m}"), die_with_parent=True)
        log(f"starting a private Kafka broker (home {home})")
        stack.up(["kafka"], flink=False)
        bootstrap = settings.bootstrap
    try:
        run_id = uuid.uuid4().hex[:8]
        base = config(bootstrap, f"bench_{run_id}_gen", args.sites, args.steps)
        n_gen, t_gen, pairs = generation_only(base)
        size = sum(len(v) for _, v in pairs) / len(pairs)
        log(f"{n_gen} readings from {args.sites} sites x {args.steps} steps, average payload {size:.0f} bytes; "
            f"generation + encoding alone: {n_gen / t_gen:,.0f} readings/s")
        sim_rates, raw_rates = [], []
        for r in range(args.rounds):
            n, dt = raw_round(base, f"bench_{run_id}_raw{r}.readings", pairs)
            raw_rates.append(n / dt)
            log(f"round {r + 1}: raw confluent-kafka produce {n} msgs in {dt:.2f} s = {n / dt:,.0f} msgs/s")
            cfg = config(bootstrap, f"bench_{run_id}_sim{r}", args.sites, args.steps)
            n, dt = simulator_round(cfg)
            sim_rates.append(n / dt)
            log(f"round {r + 1}: simulator {n} readings in {dt:.2f} s = {n / dt:,.0f} readings/s")
    finally:
        if stack is not None:
            stack.down()
            shutil.rmtree(stack.s.home, ignore_errors=True)
            log("private broker stopped, its home removed")
    best_sim, best_raw = max(sim_rates), max(raw_rates)
    ratio = best_sim / best_raw
    ok = best_sim >= TARGET_RATE and ratio >= TARGET_RATIO
    print(f"simulator: {best_sim:,.0f} readings/s (target >= {TARGET_RATE:,.0f})")
    print(f"raw confluent-kafka produce, same messages and settings: {best_raw:,.0f} msgs/s")
    print(f"ratio simulator / raw: {ratio:.2f} (target >= {TARGET_RATIO:.2f})  -> {'PASS' if ok else 'FAIL'}")
    print(json.dumps({"bench": "simulators", "readings_per_s": round(best_sim), "raw_produce_per_s": round(best_raw),
                      "ratio": round(ratio, 3), "generation_only_per_s": round(n_gen / t_gen),
                      "readings": n_gen, "avg_payload_bytes": round(size, 1), "sites": args.sites,
                      "steps": args.steps, "rounds": args.rounds, "sim_rounds_per_s": [round(x) for x in sim_rates],
                      "raw_rounds_per_s": [round(x) for x in raw_rates], "target_readings_per_s": TARGET_RATE,
                      "target_ratio": TARGET_RATIO, "pass": ok}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
