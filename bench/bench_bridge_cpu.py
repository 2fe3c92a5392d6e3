"""Benchmark: the bridge's CPU per raw reading when its clients watch a few of many sites (issue 15).

A producer (a thread of this process) appends readings of --sites sites to ``<prefix>.raw`` at --rate readings/s,
keyed ``<site>/<sensor>`` as the stream job writes them. The bridge runs as its own process (``python -m ws_bridge``,
as deployed; live raw path ``IOTPIPE_BRIDGE_LIVE_RAW`` as set, default uncommitted) with --clients websocket clients,
client i subscribed to the raw readings of site i (the end-to-end bench's shape: 4 clients on 4 of 20 sites).

Baseline, in the same window: a plain confluent-kafka consumer process (read_uncommitted, assigned from the end)
that reads every record's key and value and does nothing else: what tailing the topic costs at all.
Figures: CPU seconds (utime + stime from /proc/<pid>/stat) per reading produced in the window, of the bridge and of
the baseline consumer, their ratio, and the readings each client received (rate / sites * window expected).
Starts its own Kafka (free loopback ports, temporary home) unless --bootstrap is given. Prints figures, then ONE
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import backpressure
from bench_bridge import bridge, cpu_seconds, kafka, load_average
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from ws_clients import subscribed

from iotcommon.messages import Reading
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics

PARTITIONS = 4
# the baseline: a consumer that touches every record and nothing else (prints "ready" once assigned)
PLAIN_CONSUMER = """
import sys
from confluent_kafka import OFFSET_END, Consumer, TopicPartition
bootstrap, topic, partitions = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-plain", "enable.auto.commit": False,
              "isolation.level": "read_uncommitted", "fetch.wait.max.ms": 10, "fetch.min.bytes": 1})
c.assign([TopicPartition(topic, p, OFFSET_END) for p in range(partitions)])
c.consume(num_messages=1, timeout=1.0)
print("ready", flush=True)
n = 0
while True:
    for m in c.consume(num_messages=2000, timeout=0.05):
        if m.error() is None:
            n += len(m.key() or b"") + len(m.value() or b"")
"""


@contextmanager
def plain_consumer(bootstrap: str, topic: str) -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-c", PLAIN_CONSUMER, bootstrap, topic, str(PARTITIONS)],
                            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the baseline consumer did not start")
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def produce(bootstrap: str, topic: str, rate: int, seconds: float, sites: int, progress: list[int]) -> int:
    """Readings at ``rate``/s for ``seconds``; ``progress[0]``: how many are produced so far."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "acks": "1"})
    sensors = [s for s in SENSORS.values() if s.every_15_min]
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    sent = 0
    start = time.monotonic()
    while (elapsed := time.monotonic() - start) < seconds:
        due = int(elapsed * rate)
        while sent < due:
            sensor = sensors[(sent // sites) % len(sensors)]
            reading = Reading(f"site{sent % sites}", sensor.name,
                              (t0 + timedelta(minutes=15 * (sent // (sites * len(sensors))))).strftime(
                                  "%Y-%m-%dT%H:%M:%SZ"), float(sent % 100), sensor.unit, sent)
            backpressure.produce(producer, topic, reading.encode(), reading.device)
            sent += 1
        progress[0] = sent
        producer.poll(0)
        time.sleep(0.005)
    backpressure.flush(producer, "the paced producer")
    return sent


async def client(url: str, site: str, counts: dict[str, int], ready: asyncio.Event) -> None:
    async with subscribed(url, "raw", f"c-{site}", sites=[site]) as ws:
        ready.set()
        async for frame in ws:
            counts[site] += str(frame).count('"kafka_ts":')


async def run(url: str, bootstrap: str, topic: str, args: argparse.Namespace, pids: dict[str, int]) -> dict[str, float]:
    sites = [f"site{i}" for i in range(args.clients)]
    counts = dict.fromkeys(sites, 0)
    readies = [asyncio.Event() for _ in sites]
    tasks = [asyncio.create_task(client(url, s, counts, r)) for s, r in zip(sites, readies, strict=True)]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    idle0 = {n: cpu_seconds(p) for n, p in pids.items()}
    await asyncio.sleep(args.idle)
    idle = {n: (cpu_seconds(p) - idle0[n]) / args.idle for n, p in pids.items()}
    progress = [0]
    producing = asyncio.create_task(asyncio.to_thread(
        produce, bootstrap, topic, args.rate, args.warmup + args.seconds + 1.0, args.sites, progress))
    await asyncio.sleep(args.warmup)
    cpu0, counts0, sent0, wall0 = {n: cpu_seconds(p) for n, p in pids.items()}, dict(counts), progress[0], \
        time.monotonic()
    await asyncio.sleep(args.seconds)
    cpu1, counts1, sent1 = {n: cpu_seconds(p) for n, p in pids.items()}, dict(counts), progress[0]
    wall = time.monotonic() - wall0
    await producing
    await asyncio.sleep(1.0)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    readings = sent1 - sent0  # produced in the window (the producer may fall short of --rate on a busy box)
    out: dict[str, float] = {"window_s": wall, "readings": readings, "produced_readings_s": readings / wall}
    for name in pids:
        out[f"{name}_us_per_reading"] = (cpu1[name] - cpu0[name]) / readings * 1e6
        out[f"{name}_cpu_share"] = (cpu1[name] - cpu0[name]) / wall
        out[f"{name}_idle_cpu_share"] = idle[name]
    received = [(counts1[s] - counts0[s]) / wall for s in sites]
    out["client_readings_s_min"], out["client_readings_s_max"] = min(received), max(received)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="", help="use this Kafka instead of starting one")
    parser.add_argument("--rate", type=int, default=10_000, help="readings/s appended to the raw topic")
    parser.add_argument("--sites", type=int, default=20, help="sites the readings belong to")
    parser.add_argument("--clients", type=int, default=4, help="websocket clients, client i on site i")
    parser.add_argument("--seconds", type=float, default=15.0, help="measuring window (s)")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle CPU measured before producing")
    args = parser.parse_args()
    if min(args.rate, args.sites, args.clients) < 1 or args.clients > args.sites or args.seconds <= 0:
        parser.error("--rate, --sites, --clients must be >= 1, --clients <= --sites, --seconds > 0")
    with kafka(args) as bootstrap:
        topics = Topics(f"benchcpu{uuid.uuid4().hex[:6]}")
        with AdminClient({"bootstrap.servers": bootstrap}) as admin:
            futures = admin.create_topics([NewTopic(t, PARTITIONS, 1) for t in (
                topics.raw, topics.aggregates, topics.late, topics.deadletter)], request_timeout=30)
            wait(futures.values())  # every request answered before the block destroys the client
            for future in futures.values():
                future.result()
        with bridge(bootstrap, topics.prefix) as (url, pid), plain_consumer(bootstrap, topics.raw) as plain:
            print(f"bridge pid {pid}, baseline consumer pid {plain}", flush=True)
            r = asyncio.run(run(url, bootstrap, topics.raw, args, {"bridge": pid, "plain": plain}))
    expected = r["produced_readings_s"] / args.sites
    ratio = r["bridge_us_per_reading"] / r["plain_us_per_reading"] if r["plain_us_per_reading"] else float("nan")
    print(f"{r['produced_readings_s']:.0f} readings/s (--rate {args.rate}) of {args.sites} sites for "
          f"{r['window_s']:.1f} s, {args.clients} clients on {args.clients} sites: "
          f"bridge {r['bridge_us_per_reading']:.1f} us CPU per reading "
          f"({r['bridge_cpu_share']:.2f} CPU; idle {r['bridge_idle_cpu_share']:.3f}); baseline plain consumer "
          f"{r['plain_us_per_reading']:.1f} us ({r['plain_cpu_share']:.2f} CPU); ratio {ratio:.2f}; each client got "
          f"{r['client_readings_s_min']:.0f}-{r['client_readings_s_max']:.0f} readings/s (expected {expected:.0f}); "
          f"load average {load_average():.1f}", flush=True)
    print(json.dumps({"bench": "bridge_cpu", "rate": args.rate, "sites": args.sites, "clients": args.clients,
                      "live_raw": os.environ.get("IOTPIPE_BRIDGE_LIVE_RAW", "uncommitted"),
                      **{k: round(v, 3) for k, v in r.items()}, "ratio_vs_plain_consumer": round(ratio, 2),
                      "expected_client_readings_s": expected, "load_average_1m": round(load_average(), 1),
                      "cores": os.cpu_count()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
