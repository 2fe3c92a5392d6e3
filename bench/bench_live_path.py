"""Benchmark of the bridge's live path of raw readings (issue 15, item 3): how long after the stream job SENDS a reading
does a websocket client see it, on the committed path (read_committed: at the job's next checkpoint) and on the
uncommitted path (read_uncommitted + de-duplication), for several checkpoint intervals, in one run.

A stand-in for the job's raw sink writes readings to <prefix>.raw at --rate readings/s in Kafka transactions committed
every C ms (C from --intervals), as the stream job does at each checkpoint. Two bridges run as their own processes
(python -m ws_bridge): IOTPIPE_BRIDGE_LIVE_RAW=committed and =uncommitted; one client on each subscribes to every
raw reading and measures, per reading, receive time - the record's CreateTime (when the writer produced it; one
machine, one clock). The last phase aborts every third transaction and sends its readings again in the next one (what
a restored job does): the uncommitted client must see every reading exactly once.

Baseline (same run): the committed path at the first interval (2000 ms = the stream job's default, today's
behaviour). Starts its own Kafka (free loopback ports, temporary home) unless --bootstrap is given. Prints figures,
then ONE JSON line. The latency of the job itself (Kafka in -> raw sent) is not in these figures: bench_e2e.py has it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import backpressure
from bench_bridge import bridge, kafka, load_average, percentile
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from ws_clients import subscribed

from iotcommon.messages import Reading
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics

ITEM = re.compile(r'"kafka_ts":(\d+),"out_of_order":(?:true|false),"data":(\{[^}]*\})')
TARGET_P99_MS = 1000.0
CATCH_UP_S = 120.0


def write(bootstrap: str, topic: str, rate: int, seconds: float, interval_ms: int, abort_every: int,
          first_seq: int) -> tuple[int, int]:
    """Transactions committed every interval_ms (every abort_every-th aborted, its readings sent again in the next
    one). Returns (distinct readings committed, next seq)."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"bench-live-{uuid.uuid4().hex}",
                         "linger.ms": 5})
    producer.init_transactions(60)
    t0 = datetime(2020, 1, 1, tzinfo=UTC)
    seq, sent, txn, pending = first_seq, 0, 0, []
    start = time.monotonic()
    next_commit = start + interval_ms / 1000
    producer.begin_transaction()
    while time.monotonic() - start < seconds:
        due = first_seq + int((time.monotonic() - start) * rate)
        while seq < due:
            reading = Reading(f"site{seq % 10}", "TH1", (t0 + timedelta(minutes=15 * seq)).strftime(
                "%Y-%m-%dT%H:%M:%SZ"), 20.0, SENSORS["TH1"].unit, seq)
            pending.append((reading.encode(), reading.device))
            backpressure.produce(producer, topic, *pending[-1])
            seq += 1
        producer.poll(0)
        if time.monotonic() >= next_commit:
            txn += 1
            if abort_every and txn % abort_every == 0:
                producer.abort_transaction(60)
                producer.begin_transaction()
                for value, key in pending:  # the restored job sends them again
                    backpressure.produce(producer, topic, value, key)
            else:
                producer.commit_transaction(60)
                sent += len(pending)
                pending = []
                producer.begin_transaction()
            next_commit += interval_ms / 1000
        time.sleep(0.002)
    producer.commit_transaction(60)
    return sent + len(pending), seq


async def client(url: str, delays: list[float], seen: Counter[str], ready: asyncio.Event, first_seq: int) -> None:
    async with subscribed(url, "raw", "raw") as ws:
        ready.set()
        async for frame in ws:
            now = time.time() * 1000
            for kafka_ts, data in ITEM.findall(str(frame)):
                reading = json.loads(data)
                if reading["seq"] < first_seq:  # a reading of an earlier phase, late on a bridge that fell behind
                    continue
                seen[f"{reading['site']}/{reading['seq']}"] += 1
                delays.append(now - int(kafka_ts))


async def phase(urls: dict[str, str], bootstrap: str, topic: str, rate: int, seconds: float, interval_ms: int,
                abort_every: int, first_seq: int) -> tuple[dict[str, dict[str, float]], int, int]:
    delays: dict[str, list[float]] = {name: [] for name in urls}
    seen: dict[str, Counter[str]] = {name: Counter() for name in urls}
    readies = {name: asyncio.Event() for name in urls}
    tasks = [asyncio.create_task(client(url, delays[n], seen[n], readies[n], first_seq)) for n, url in urls.items()]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies.values())), 60)
    committed, next_seq = await asyncio.to_thread(write, bootstrap, topic, rate, seconds, interval_ms, abort_every,
                                                  first_seq)
    deadline = time.monotonic() + CATCH_UP_S  # every committed reading reaches both clients (a loaded box lags)
    while time.monotonic() < deadline and any(len(seen[n]) < committed for n in urls):
        await asyncio.sleep(0.2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    out = {}
    for name in urls:
        d = delays[name]
        out[name] = {"n": len(d), "p50_ms": percentile(d, 0.5), "p99_ms": percentile(d, 0.99),
                     "max_ms": max(d) if d else float("nan"), "distinct": len(seen[name]),
                     "shown_twice": sum(1 for c in seen[name].values() if c > 1)}
    return out, committed, next_seq


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="", help="use this Kafka instead of starting one")
    parser.add_argument("--rate", type=int, default=1000, help="readings/s written to the raw topic (default 1000)")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each phase (default 20)")
    parser.add_argument("--intervals", default="2000,1000,500", help="commit intervals, ms (default 2000,1000,500)")
    args = parser.parse_args()
    intervals = [int(i) for i in args.intervals.split(",")]
    with kafka(args) as bootstrap:
        topics = Topics(f"benchlive{uuid.uuid4().hex[:6]}")
        with AdminClient({"bootstrap.servers": bootstrap}) as admin:
            futures = admin.create_topics([NewTopic(t, 2, 1) for t in (topics.raw, topics.aggregates, topics.late,
                                                                          topics.deadletter)], request_timeout=30)
            wait(futures.values())  # every request answered before the block destroys the client
            for future in futures.values():
                future.result()
        with bridge_pair(bootstrap, topics.prefix) as urls:
            results: list[dict[str, Any]] = []
            seq = 0
            for interval, abort_every in [*((i, 0) for i in intervals), (intervals[-1], 3)]:
                r, committed, seq = asyncio.run(phase(urls, bootstrap, topics.raw, args.rate, args.seconds,
                                                      interval, abort_every, seq))
                results.append({"interval_ms": interval, "abort_every": abort_every, "committed_readings": committed,
                                **{f"{k}_{name}": v for name, fig in r.items() for k, v in fig.items()}})
                what = f"commit every {interval} ms" + (f", every {abort_every}rd aborted + replayed"
                                                        if abort_every else "")
                print(f"{what}: " + "; ".join(
                    f"{name}: p50 {fig['p50_ms']:.0f} ms, p99 {fig['p99_ms']:.0f} ms, max {fig['max_ms']:.0f} ms, "
                    f"{fig['distinct']} of {committed} readings, {fig['shown_twice']} shown twice"
                    for name, fig in r.items()), flush=True)
    base = results[0]["p99_ms_committed"]
    for row in results:
        row["uncommitted_p99_vs_baseline"] = row["p99_ms_uncommitted"] / base if base else float("nan")
    best = results[0]["p99_ms_uncommitted"]
    print(f"baseline (committed path, commit every {intervals[0]} ms): p99 {base:.0f} ms; uncommitted path at the same "
          f"interval: p99 {best:.0f} ms = {best / base:.2f}x; target p99 < {TARGET_P99_MS:.0f} ms: "
          f"{'met' if best < TARGET_P99_MS else 'NOT met'}; load average {load_average():.1f}")
    print(json.dumps({"bench": "bridge_live_path", "rate": args.rate, "seconds": args.seconds, "phases": results,
                      "baseline_p99_ms": base, "load_average_1m": round(load_average(), 1)},
                     default=lambda v: None))
    return 0


@contextmanager
def bridge_pair(bootstrap: str, prefix: str) -> Iterator[dict[str, str]]:
    """Both bridges (committed and uncommitted live path) on the same topics; yields {name: websocket URL}."""
    with ExitStack() as stack:
        urls = {}
        for name in ("committed", "uncommitted"):
            os.environ["IOTPIPE_BRIDGE_LIVE_RAW"] = name  # bench_bridge.bridge passes os.environ on
            urls[name] = stack.enter_context(bridge(bootstrap, prefix))[0]
        os.environ.pop("IOTPIPE_BRIDGE_LIVE_RAW", None)
        yield urls


if __name__ == "__main__":
    sys.exit(main())
