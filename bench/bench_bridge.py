"""Benchmark: websocket fan-out of the bridge to 100 concurrent clients, against ONE client (baseline) in the same run.

A producer appends readings to ``<prefix>.raw`` at a fixed rate (default 1,000 records/s; the topic uses
LogAppendTime, so a record's Kafka timestamp is the moment it reached the broker). The bridge runs as its own process
(``python -m ws_bridge``, as deployed) and tails the topic; N websocket clients in this process subscribe to every
raw record. Each client measures, per record, the delay from reaching Kafka to being received (its ``kafka_ts``
against the receive time; one machine, one clock) and counts what it got in the measuring window.

Phases: baseline with 1 client, then the fan-out with --clients clients, same rate and duration.
Target: 1,000 records/s to each of 100 clients with p99 < 250 ms. Starts its own Kafka (free loopback ports,
temporary home) unless --bootstrap is given. Prints figures and the ratio, then ONE JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import backpressure
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from ws_clients import subscribed

from iotcommon.days import iso_z
from iotcommon.messages import Reading
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics

TARGET_RATE = 1000
TARGET_CLIENTS = 100
TARGET_P99_MS = 250.0
KAFKA_TS = re.compile(r'"kafka_ts":(\d+)')


@contextmanager
def kafka(args: argparse.Namespace) -> Iterator[str]:
    if args.bootstrap:
        yield args.bootstrap
        return
    from iotpipe_stack.ports import free_ports
    from iotpipe_stack.settings import resolve
    from iotpipe_stack.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="bench-bridge-") as home:
        port, controller = free_ports(2)
        environ = {k: v for k, v in os.environ.items() if k in ("IOTPIPE_CACHE",)}
        settings = resolve(environ, {"home": home}).replace(kafka_port=port, kafka_controller_port=controller)
        stack = LocalStack(settings, progress=lambda m: print(f"[stack] {m}", flush=True), die_with_parent=True)
        try:
            stack.up(["kafka"], flink=False)
            yield settings.bootstrap
        finally:
            stack.down()


@contextmanager
def bridge(bootstrap: str, prefix: str) -> Iterator[tuple[str, int]]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "IOTPIPE_KAFKA_BOOTSTRAP": bootstrap, "IOTPIPE_TOPIC_PREFIX": prefix,
           "IOTPIPE_BRIDGE_PORT": str(port), "IOTPIPE_BRIDGE_MAX_CONNECTIONS": "1000", "IOTPIPE_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "ws_bridge"], env=env, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    if json.load(r)["kafka"]:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the bridge did not start")
            time.sleep(0.2)
        yield f"ws://127.0.0.1:{port}/ws", proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def produce_at_rate(bootstrap: str, topic: str, rate: int, seconds: float, stop: threading.Event) -> int:
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 2, "acks": "1"})
    sensors = [s for s in SENSORS.values() if s.every_15_min]
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    sent, tick = 0, 0.01
    start = time.monotonic()
    while not stop.is_set() and time.monotonic() - start < seconds:
        due = int((time.monotonic() - start) * rate)
        while sent < due:
            sensor = sensors[sent % len(sensors)]
            site = f"site{sent % 10}"
            reading = Reading(site, sensor.name, iso_z(t0 + timedelta(minutes=15 * (sent // 70))), float(sent),
                              sensor.unit, sent)
            backpressure.produce(producer, topic, reading.encode(), reading.device)
            sent += 1
        producer.poll(0)
        time.sleep(tick)
    backpressure.flush(producer, "the paced producer")
    return sent


@dataclass
class ClientStats:
    received: int = 0
    overflow: int = 0
    delays: list[float] = field(default_factory=list)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> float:
    return os.getloadavg()[0]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def phase(url: str, bootstrap: str, topic: str, clients: int, rate: int, warmup: float,
                duration: float) -> dict[str, float]:
    stats = [ClientStats() for _ in range(clients)]
    readies = [asyncio.Event() for _ in range(clients)]
    done = asyncio.Event()
    far = int(time.time() * 1000) + 3_600_000
    window = [far, far]  # [lo, hi) of Kafka timestamps measured; set once every client is subscribed

    tasks = []
    for i in range(clients):
        tasks.append(asyncio.create_task(client_lazy(url, window, stats[i], readies[i], done)))
        if i % 20 == 19:
            await asyncio.sleep(0.05)
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 120)
    now_ms = int(time.time() * 1000)
    window[0], window[1] = now_ms + int(warmup * 1000), now_ms + int((warmup + duration) * 1000)
    stop = threading.Event()
    sent = await asyncio.to_thread(produce_at_rate, bootstrap, topic, rate, warmup + duration + 1.0, stop)
    await asyncio.sleep(2.0)  # the last records of the window arrive
    done.set()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    per_client = [s.received / duration for s in stats]
    delays = [d for s in stats for d in s.delays]
    return {"clients": clients, "sent": sent, "records_s_per_client_mean": statistics.mean(per_client),
            "records_s_per_client_min": min(per_client), "delay_ms_p50": percentile(delays, 0.50),
            "delay_ms_p99": percentile(delays, 0.99), "delay_ms_max": max(delays) if delays else float("nan"),
            "overflow_frames": sum(s.overflow for s in stats)}


async def client_lazy(url: str, window: list[int], stats: ClientStats, ready: asyncio.Event,
                      done: asyncio.Event) -> None:
    async with subscribed(url, "raw", "all") as ws:
        ready.set()
        async for frame in ws:  # ends when the phase cancels this task
            now = time.time() * 1000
            if not isinstance(frame, str):
                continue
            if frame.startswith('{"type":"overflow"'):
                stats.overflow += 1
                continue
            lo, hi = window
            for match in KAFKA_TS.finditer(frame):
                ts = int(match.group(1))
                if lo <= ts < hi:
                    stats.received += 1
                    stats.delays.append(now - ts)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="", help="use this Kafka instead of starting one")
    parser.add_argument("--clients", type=int, default=TARGET_CLIENTS)
    parser.add_argument("--rate", type=int, default=TARGET_RATE, help="records/s appended to the raw topic")
    parser.add_argument("--duration", type=float, default=20.0, help="measuring window (s)")
    parser.add_argument("--warmup", type=float, default=3.0)
    args = parser.parse_args()
    with kafka(args) as bootstrap:
        topics = Topics(f"benchbridge{uuid.uuid4().hex[:6]}")
        new = [NewTopic(t, 4, 1, config={"message.timestamp.type": "LogAppendTime"})
               for t in (topics.raw, topics.aggregates, topics.late, topics.deadletter)]
        with AdminClient({"bootstrap.servers": bootstrap}) as admin:
            futures = admin.create_topics(new, request_timeout=30)
            wait(futures.values())  # every request answered before the block destroys the client
            for future in futures.values():
                future.result()
        with bridge(bootstrap, topics.prefix) as (url, pid):
            results = {}
            for name, clients in (("baseline", 1), ("fanout", args.clients)):
                cpu0, own0, wall0 = cpu_seconds(pid), time.process_time(), time.monotonic()
                r = asyncio.run(phase(url, bootstrap, topics.raw, clients, args.rate, args.warmup, args.duration))
                wall = time.monotonic() - wall0
                r["bridge_cpu_share"] = (cpu_seconds(pid) - cpu0) / wall
                r["clients_cpu_share"] = (time.process_time() - own0) / wall
                results[name] = r
                print(f"{name:>8}: {clients:3d} client(s), {r['sent']} records sent at {args.rate}/s; per client "
                      f"{r['records_s_per_client_mean']:.0f} records/s (min {r['records_s_per_client_min']:.0f}); "
                      f"delay Kafka->client p50 {r['delay_ms_p50']:.1f} ms, p99 {r['delay_ms_p99']:.1f} ms, "
                      f"max {r['delay_ms_max']:.1f} ms; overflow frames {r['overflow_frames']}; bridge process used "
                      f"{r['bridge_cpu_share']:.2f} CPU, the clients {r['clients_cpu_share']:.2f}", flush=True)
    base, fan = results["baseline"], results["fanout"]
    ratio_p99 = fan["delay_ms_p99"] / base["delay_ms_p99"] if base["delay_ms_p99"] else float("nan")
    delivered = fan["records_s_per_client_min"] * args.clients
    met = (args.clients >= TARGET_CLIENTS and fan["records_s_per_client_min"] >= 0.99 * TARGET_RATE
           and fan["delay_ms_p99"] < TARGET_P99_MS and args.rate >= TARGET_RATE)
    print(f"fan-out: {delivered:.0f} records/s delivered in total; p99 delay {ratio_p99:.2f}x the 1-client "
          f"baseline; target ({TARGET_RATE}/s to each of {TARGET_CLIENTS} clients, p99 < {TARGET_P99_MS:.0f} ms): "
          f"{'met' if met else 'NOT met'}")
    print(json.dumps({"bench": "bridge_fanout", "rate": args.rate, "clients": args.clients,
                      "records_s_per_client_mean": round(fan["records_s_per_client_mean"], 1),
                      "records_s_per_client_min": round(fan["records_s_per_client_min"], 1),
                      "delivered_records_s": round(delivered, 1),
                      "delay_ms_p50": round(fan["delay_ms_p50"], 1), "delay_ms_p99": round(fan["delay_ms_p99"], 1),
                      "baseline_delay_ms_p50": round(base["delay_ms_p50"], 1),
                      "baseline_delay_ms_p99": round(base["delay_ms_p99"], 1),
                      "ratio_p99_vs_baseline": round(ratio_p99, 2), "overflow_frames": fan["overflow_frames"],
                      "bridge_cpu_share": round(fan["bridge_cpu_share"], 2),
                      "baseline_bridge_cpu_share": round(base["bridge_cpu_share"], 2),
                      "clients_cpu_share": round(fan["clients_cpu_share"], 2),
                      "load_average_1m": round(load_average(), 1), "cores": os.cpu_count(),
                      "target_met": met}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
