"""Benchmark: sustained readings/s through the stream job (Kafka in -> raw + aggregates out) at parallelism 1 and 2,
against a plain Kafka consumer reading the same kind of topic in the same run, and the delay from a day's closing
reading to its first aggregate.

For each parallelism: a fresh topic prefix; the job (unbounded, exactly-once sinks, checkpoints every
--checkpoint-ms) is started and warmed up with --warmup-days simulated days (JIT, Python worker; by default as many
days as the timed backlog, so that the JIT compilers are done with the hot code: see the JIT share below); then
--readings readings (canonical reading.v1, pre-encoded, 2 partitions, --sites sites, every sensor) are produced as fast
as possible. Rate = readings / (time from the first produce to the moment the last raw record is visible to a
read_committed consumer). The baseline is a confluent-kafka consumer reading the same topic from the start (no
processing). Latency: after the backlog, --closes times a reading that pushes the watermark past a day's end is
produced; the delay is measured until that day's first AggDay[TH1] is visible (it includes the wait for the
transaction commit at the next checkpoint).

State size: the size of the job's newest retained checkpoint (all operator state: the sites' clocks, the open days)
at the end of each run; and a churn run (--churn-sites sites that come and go: each reports for two simulated days,
then never again) prints the checkpoint size after every simulated day, which must stay flat (sites idle beyond
--site-idle-s are forgotten; the bench shortens that limit so it passes within the run).

Also the load average at the end of each timed backlog and the job's CPU time (client, JVM and Python worker) per
reading: the machine is shared, and CPU per reading is far less distorted by other load than a rate. And the share of
that CPU used by the JVM's JIT compilers: well above a few per cent, the job was still warming up (use more
--warmup-days).

Starts its own Kafka (free loopback ports, temporary home) unless --bootstrap is given. Prints figures, then ONE JSON
line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from iotcommon.messages import Reading
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics

TARGET_RPS = 50_000
TARGET_RATIO = 0.25
ZONE = ZoneInfo("Europe/Athens")  # the job's default IOTPIPE_SITE_TZ


@contextmanager
def kafka(args: argparse.Namespace) -> Iterator[tuple[str, Path, Path, dict[str, str]]]:
    from iotpipe_stack.ports import free_ports
    from iotpipe_stack.settings import resolve
    from iotpipe_stack.stack import LocalStack

    with tempfile.TemporaryDirectory(prefix="bench-sj-") as home:
        port, controller, zk, thrift = free_ports(4)
        environ = {k: v for k, v in os.environ.items() if k in ("IOTPIPE_CACHE", "IOTPIPE_FLINK_VENV")}
        settings = resolve(environ, {"home": home}).replace(kafka_port=port, kafka_controller_port=controller,
                                                            zk_port=zk, thrift_port=thrift)
        stack = LocalStack(settings, progress=lambda m: print(f"[stack] {m}", flush=True), die_with_parent=True)
        inst = stack.install(flink=True)
        env = {**os.environ, "JAVA_HOME": str(inst.java.home), "JVM_ARGS": args.jvm_args,
               "PATH": f"{inst.java.home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", "IOTPIPE_HOME": home}
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        try:
            if args.bootstrap:
                yield args.bootstrap, inst.flink_python, inst.connector_jar, env
            else:
                stack.up(["kafka"], flink=False)
                yield settings.bootstrap, inst.flink_python, inst.connector_jar, env
        finally:
            if not args.bootstrap:
                stack.down()


def local_day(day: int) -> date:
    return date(2020, 1, 1) + timedelta(days=day)


def day_start(day: int) -> datetime:
    """Local midnight (UTC) that starts simulated day `day`: DST-correct, so a day is 23, 24 or 25 hours."""
    return datetime.combine(local_day(day), datetime.min.time(), ZONE).astimezone(UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def day_readings(sites: int, day: int, seq0: int) -> list[Reading]:
    """One simulated local day (its quarters after local midnight, the last at the next midnight) of every sensor of
    every site, in time order. No reading lies past the day's end, so only a later reading closes it."""
    out = []
    start = day_start(day)
    quarters = int((day_start(day + 1) - start).total_seconds()) // 900
    for q in range(1, quarters + 1):
        ts = iso(start + timedelta(minutes=15 * q))
        for s in range(sites):
            for name, sensor in SENSORS.items():
                at_end = q == quarters and name in ("Etot", "Wtot")
                if sensor.every_15_min or at_end or (name == "Mov1" and q % 20 == 0):
                    value = 1.0 if name == "Mov1" else round(10 + (q * 7 + s * 3) % 97 * 0.37, 2)
                    if name in ("Etot", "Wtot"):
                        value = float(1000 + 60000 * day)
                    out.append(Reading(f"site{s:03d}", name, ts, value, sensor.unit, seq0 + q))
    return out


Message = tuple[bytes, bytes]


def encode(readings: list[Reading]) -> list[Message]:
    """(key, value) pairs, keyed by site (the producer contract: a site's readings in one partition, in order);
    encoded before any timing starts: the job's rate is measured, not the bench's encoding."""
    return [(r.site.encode(), r.encode()) for r in readings]


def produce(bootstrap: str, topic: str, messages: list[Message]) -> float:
    """Produce pre-encoded messages as fast as possible; returns the seconds until the last acknowledgement."""
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.size": 1_000_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 2_000_000})
    started = time.monotonic()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, value, key=key)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return time.monotonic() - started


class Tail:
    """Counts committed records of a topic as they become visible (read_committed), in a thread; with track_keys, also
    when each key was first seen. Counting per batch keeps the bench's own CPU use small (it shares the machine)."""

    def __init__(self, bootstrap: str, topic: str, track_keys: bool = False) -> None:
        self.count = 0
        self.keys: dict[bytes, float] = {}
        self.last_at = 0.0
        self.track_keys = track_keys
        self._stop = threading.Event()
        self._consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-{uuid.uuid4().hex}",
                                   "isolation.level": "read_committed", "enable.auto.commit": False,
                                   "fetch.max.bytes": 52428800})
        meta = self._consumer.list_topics(topic, timeout=10).topics[topic]
        self._consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = self._consumer.consume(10000, 0.2)
            if not batch:
                continue
            now = time.monotonic()
            good = [m for m in batch if m.error() is None]
            if self.track_keys:
                for msg in good:
                    key = msg.key()
                    if key is not None and key not in self.keys:
                        self.keys[key] = now
            self.count += len(good)
            self.last_at = now

    def wait_count(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count >= n

    def wait_key(self, key: bytes, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        while key not in self.keys and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.keys.get(key)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._consumer.close()


def baseline(bootstrap: str, topic: str, n: int) -> float:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"base-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "fetch.max.bytes": 52428800})
    meta = consumer.list_topics(topic, timeout=10).topics[topic]
    consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
    seen = 0
    started = None
    while seen < n:
        batch = consumer.consume(10000, 1.0)
        if started is None and batch:
            started = time.monotonic()
        seen += sum(1 for m in batch if not m.error())
    elapsed = time.monotonic() - (started or time.monotonic())
    consumer.close()
    return n / elapsed if elapsed > 0 else float("inf")


def checkpoint_bytes(home: Path, prefix: str) -> int | None:
    """Bytes of the newest completed checkpoint of the job (full checkpoints: every operator's state)."""
    found = sorted((meta.stat().st_mtime, meta.parent)
                   for meta in (home / "stream_job" / "checkpoints" / prefix).glob("*/chk-*/_metadata"))
    if not found:
        return None
    return sum(f.stat().st_size for f in found[-1][1].rglob("*") if f.is_file())


JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")  # HotSpot's compiler threads, as /proc shows their names


def _stat(path: Path) -> tuple[str, list[str]] | None:
    """(comm, the fields after it) of a /proc stat file, or None if the process or thread has just ended."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def session_cpu_s(session: int) -> tuple[float, float]:
    """CPU seconds (user + system) used so far by the live processes of a session: the job's Python client, its
    JVM and its Python worker (the job runs in its own session); and the part of it used by the JVM's JIT compiler
    threads (a lower bound: HotSpot ends idle compiler threads, and their time leaves the per-thread counts). Less
    sensitive to a loaded machine than a rate."""
    ticks = jit = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        found = _stat(stat)
        if found is None or int(found[1][3]) != session:  # fields after "pid (comm) ": state ppid pgrp session ...
            continue
        fields = found[1]
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
        for task in (stat.parent / "task").glob("*/stat"):
            thread = _stat(task)
            if thread is not None and thread[0] in JIT_THREADS:
                jit += int(thread[1][11]) + int(thread[1][12])
    return ticks / os.sysconf("SC_CLK_TCK"), jit / os.sysconf("SC_CLK_TCK")


def start_job(python: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen([str(python), "-m", "stream_job"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop_job(job: subprocess.Popen[bytes]) -> None:
    if job.poll() is None:
        job.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            job.wait(60)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(job.pid, signal.SIGKILL)


def create_topics(bootstrap: str, prefix: str) -> Topics:
    """The pipeline's topics under a fresh prefix: readings with 2 partitions, the job's outputs with 1."""
    topics = Topics(prefix)
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(topics.readings, 2, 1)] +
                                      [NewTopic(t, 1, 1) for t in topics.all()[1:]], request_timeout=30)
        wait(futures.values())  # every request answered before the block destroys the client
        for fut in futures.values():
            fut.result()
    return topics


def churn(args: argparse.Namespace, bootstrap: str, python: Path, jar: Path, env: dict[str, str]) -> list[int]:
    """Sites that come and go: site i reports (TH1 and HVAC1, every 6 hours) on simulated days i*days/sites and the next
    one, never again. Returns the checkpoint size after each simulated day."""
    prefix = f"churn_{uuid.uuid4().hex[:6]}"
    topics = create_topics(bootstrap, prefix)
    home = Path(env["IOTPIPE_HOME"])
    job_env = {**env, "IOTPIPE_KAFKA_BOOTSTRAP": bootstrap, "IOTPIPE_TOPIC_PREFIX": prefix,
               "IOTPIPE_FLINK_CONNECTOR_JAR": str(jar), "IOTPIPE_STARTING_OFFSETS": "earliest",
               "IOTPIPE_CHECKPOINT_INTERVAL_MS": "1000", "IOTPIPE_RESTORE": "none",
               "IOTPIPE_SITE_IDLE_S": str(args.site_idle_s), "IOTPIPE_IDLE_TIMEOUT_MS": "2000"}
    job = start_job(python, job_env, home / f"{prefix}.log")
    raw = Tail(bootstrap, topics.raw)
    sizes: list[int] = []
    sent = 0
    try:
        per_day = args.churn_sites // args.churn_days
        for day in range(args.churn_days + 2):
            active = [s for s in range((day - 1) * per_day, (day + 1) * per_day) if 0 <= s < args.churn_sites]
            start = day_start(day)
            readings = [Reading(f"churn{s:05d}", name, iso(start + timedelta(hours=h)), 20.0, SENSORS[name].unit, h)
                        for h in range(6, 25, 6) for s in active for name in ("TH1", "HVAC1")]
            produce(bootstrap, topics.readings, encode(readings))
            sent += len(readings)
            if not raw.wait_count(sent, 900):
                raise SystemExit(f"churn: job stalled at {raw.count}/{sent}; log: {home / f'{prefix}.log'}")
            time.sleep(args.site_idle_s + 5)  # the sites that left are now idle beyond the limit: forgotten
            time.sleep(3)  # and a checkpoint taken after that
            size = checkpoint_bytes(home, prefix) or 0
            sizes.append(size)
            print(f"  churn: simulated day {day}: {len(active)} active sites, checkpoint {size:,} bytes", flush=True)
        return sizes
    finally:
        raw.close()
        stop_job(job)


def run_job(args: argparse.Namespace, bootstrap: str, python: Path, jar: Path, env: dict[str, str],
            parallelism: int) -> dict[str, Any]:
    prefix = f"bench{parallelism}_{uuid.uuid4().hex[:6]}"
    topics = create_topics(bootstrap, prefix)
    per_day = len(day_readings(args.sites, 0, 0))
    days = max(2, args.readings // per_day)
    # days 0 .. first-1 warm the job up (JIT, Python worker); the backlog follows them
    first = days if args.warmup_days < 0 else args.warmup_days
    warm = [r for d in range(first) for r in day_readings(args.sites, d, d * 100)]
    backlog = encode([r for d in range(first, first + days) for r in day_readings(args.sites, d, d * 100)])
    job_env = {**env, "IOTPIPE_KAFKA_BOOTSTRAP": bootstrap, "IOTPIPE_TOPIC_PREFIX": prefix,
               "IOTPIPE_FLINK_CONNECTOR_JAR": str(jar), "IOTPIPE_FLINK_PARALLELISM": str(parallelism),
               "IOTPIPE_STARTING_OFFSETS": "earliest", "IOTPIPE_CHECKPOINT_INTERVAL_MS": str(args.checkpoint_ms),
               "IOTPIPE_PYTHON_MODE": args.python_mode, "IOTPIPE_RESTORE": "none"}
    log = Path(env["IOTPIPE_HOME"]) / f"{prefix}.log"
    with log.open("wb") as out:
        job = subprocess.Popen([str(python), "-m", "stream_job"], env=job_env, stdout=out, stderr=subprocess.STDOUT,
                               start_new_session=True)
    raw = Tail(bootstrap, topics.raw)
    aggs = Tail(bootstrap, topics.aggregates, track_keys=True)
    try:
        produce(bootstrap, topics.readings, encode(warm))
        if not raw.wait_count(len(warm), 1800):  # includes the job's start: minutes on a loaded machine
            raise SystemExit(f"job p={parallelism} did not process the warm-up days; log: {log}")
        print(f"  p={parallelism}: warmed up ({len(warm)} readings); producing {len(backlog)}", flush=True)
        cpu_before, jit_before = session_cpu_s(job.pid)
        started = time.monotonic()
        produce_s = produce(bootstrap, topics.readings, backlog)
        total = len(warm) + len(backlog)
        if not raw.wait_count(total, 1800):
            raise SystemExit(f"job p={parallelism} stalled at {raw.count}/{total} raw records; log: {log}")
        raw_s = raw.last_at - started
        cpu_after, jit_after = session_cpu_s(job.pid)
        cpu_us = (cpu_after - cpu_before) / len(backlog) * 1e6
        jit_share = (jit_after - jit_before) / max(cpu_after - cpu_before, 1e-9)
        last_day = local_day(first + days - 2)  # the newest day a later reading closed
        aggs.wait_key(f"site000/AggDay[TH1]/{last_day}".encode(), 120)
        rps = len(backlog) / raw_s
        load = os.getloadavg()[0]  # the machine is shared: the rate means little without it
        print(f"  p={parallelism}: {len(backlog)} readings in {raw_s:.1f} s = {rps:,.0f} readings/s "
              f"(producer alone: {len(backlog) / produce_s:,.0f}/s; load average {load:.1f}); "
              f"job CPU {cpu_us:.1f} us per reading, {jit_share:.1%} of it the JIT compilers", flush=True)
        # latency: a reading past the end of a day (+ delay) closes it; wait for its first aggregate
        delays = []
        for i in range(args.closes):
            day = first + days + 1 + i
            before = raw.count
            day_batch = day_readings(args.sites, day, day * 100)
            produce(bootstrap, topics.readings, encode(day_batch))
            raw.wait_count(before + len(day_batch), 300)  # the day is in; only the closing reading is missing
            closing = [Reading(f"site{s:03d}", "TH1", iso(day_start(day + 1) + timedelta(minutes=15)), 20.0, "C",
                               day * 100 + 99) for s in range(args.sites)]
            closing += [Reading(f"site{s:03d}", "TH2", closing[0].ts, 20.0, "C", day * 100 + 99)
                        for s in range(args.sites)]
            closing_messages = encode(closing)
            before = raw.count
            sent = time.monotonic()
            produce(bootstrap, topics.readings, closing_messages)
            day_name = local_day(day)
            got = aggs.wait_key(f"site000/AggDay[TH1]/{day_name}".encode(), 120)
            if got is not None:
                delays.append((got - sent) * 1000)
            raw.wait_count(before + len(closing), 60)
        state = checkpoint_bytes(Path(env["IOTPIPE_HOME"]), prefix)
        return {"rps": rps, "seconds": raw_s, "readings": len(backlog), "warmup_readings": len(warm),
                "close_ms": delays, "state_bytes": state,
                "load": load, "cpu_us": cpu_us, "jit_share": jit_share}
    finally:
        raw.close()
        aggs.close()
        stop_job(job)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", default="", help="use this Kafka instead of starting one")
    parser.add_argument("--readings", type=int, default=400_000, help="backlog size (rounded to whole days)")
    parser.add_argument("--sites", type=int, default=40)
    parser.add_argument("--warmup-days", type=int, default=-1, help="simulated days the job processes before the "
                        "timed backlog (JIT compilation and worker start-up are not part of a sustained rate); "
                        "default -1: as many days as the timed backlog (after 10 days, the JIT compilers still used "
                        "16-22 %% of the job's CPU in a 1.2M backlog; after 44, ~8 %%)")
    parser.add_argument("--parallelism", default="1,2")
    parser.add_argument("--checkpoint-ms", type=int, default=1000)
    parser.add_argument("--closes", type=int, default=3, help="day closes timed for the latency figure")
    parser.add_argument("--jvm-args", default="-Xmx1g -XX:+UseParallelGC", help="JVM_ARGS of the job's JVM")
    parser.add_argument("--python-mode", default="process", choices=("process", "thread"))
    parser.add_argument("--churn-sites", type=int, default=10_000, help="sites of the churn run (0: no churn run)")
    parser.add_argument("--churn-days", type=int, default=6, help="simulated days over which churn sites come and go")
    parser.add_argument("--site-idle-s", type=int, default=20, help="IOTPIPE_SITE_IDLE_S of the churn run")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the job (its own process group) and Kafka are stopped by the finally blocks
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(143))

    with kafka(args) as (bootstrap, python, jar, env):
        results: dict[int, dict[str, Any]] = {}
        base_rps = []
        for p in (int(x) for x in args.parallelism.split(",")):
            results[p] = run_job(args, bootstrap, python, jar, env, p)
            with AdminClient({"bootstrap.servers": bootstrap}) as admin:
                meta = admin.list_topics(timeout=10)
            prefix_topics = [t for t in meta.topics if t.startswith(f"bench{p}_") and t.endswith(".readings")]
            n = results[p]["readings"]
            base_rps.append(baseline(bootstrap, prefix_topics[0], n))
            print(f"  baseline: a plain consumer reads the same topic at {base_rps[-1]:,.0f} readings/s", flush=True)
        churn_sizes = churn(args, bootstrap, python, jar, env) if args.churn_sites else []
    base = statistics.median(base_rps)
    figures: dict[str, Any] = {"bench": "stream_job", "sites": args.sites, "python_mode": args.python_mode,
                               "jvm_args": args.jvm_args,
                               "checkpoint_ms": args.checkpoint_ms, "baseline_consumer_rps": round(base)}
    print("\nresults")
    for p, r in results.items():
        ratio = r["rps"] / base
        close = statistics.median(r["close_ms"]) if r["close_ms"] else None
        print(f"  parallelism {p}: {r['rps']:,.0f} readings/s (target {TARGET_RPS:,}: "
              f"{'met' if r['rps'] >= TARGET_RPS else 'NOT met'}), {ratio:.1%} of the plain consumer "
              f"(target {TARGET_RATIO:.0%}: {'met' if ratio >= TARGET_RATIO else 'NOT met'}); "
              f"closing reading -> first aggregate: median {close if close is None else round(close)} ms "
              f"over {len(r['close_ms'])}; checkpoint (state) {r['state_bytes']} bytes; load average {r['load']:.1f}")
        figures[f"p{p}_rps"] = round(r["rps"])
        figures[f"p{p}_ratio"] = round(ratio, 4)
        figures[f"p{p}_readings"] = r["readings"]
        figures[f"p{p}_warmup_readings"] = r["warmup_readings"]
        figures[f"p{p}_close_to_aggregate_ms"] = None if close is None else round(close)
        figures[f"p{p}_state_bytes"] = r["state_bytes"]
        figures[f"p{p}_load_avg"] = round(r["load"], 1)
        figures[f"p{p}_job_cpu_us_per_reading"] = round(r["cpu_us"], 1)
        figures[f"p{p}_jit_cpu_share"] = round(r["jit_share"], 3)
    if churn_sizes:
        print(f"  churn ({args.churn_sites} sites that come and go): checkpoint bytes per simulated day {churn_sizes}")
        figures["churn_sites"] = args.churn_sites
        figures["churn_state_bytes"] = churn_sizes
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
