"""What the bench watches while the load runs: topic offsets and group lag (Kafka), rows written (sync workers'
/metrics), CPU and RSS per component (psutil), and probes of HBase: sampled readings and each day's aggregate."""

from __future__ import annotations

import re
import threading
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta

import happybase
import psutil
from background import Background
from confluent_kafka import Consumer, TopicPartition

from e2e.probes import HeadProbes
from e2e.schedule import Plan, site_name
from iotcommon import hbase_layout as layout
from iotcommon.topics import Topics

PROBES_PER_S = 20  # sampled readings per second of load, looked up in HBase oldest first per site (e2e.probes)
PROBE_POLL_S = 0.1
PROBE_GIVE_UP_S = 180.0
AGGREGATE = "AggDay[TH1]"  # the day's aggregate probed for site0000
_WRITTEN = re.compile(r'^iotpipe_sync_written_total\{table="([^"]+)"\} ([0-9.e+]+)$', re.M)


class Offsets:
    """End offsets of topics and committed offsets of the pipeline's consumer groups."""

    def __init__(self, bootstrap: str, topics: Topics, partitions: int) -> None:
        self.topics = topics
        self.partitions = partitions
        self._groups = {"stream-job": (f"iotpipe-stream-job-{topics.prefix}", [topics.readings]),
                        "hbase-sync": (f"{topics.prefix}.hbase-sync",
                                       [topics.raw, topics.aggregates, topics.late, topics.deadletter])}
        self._consumers = {name: Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                                           "enable.auto.commit": False})
                           for name, (group, _) in self._groups.items()}
        self._lock = threading.Lock()

    def _parts(self, topic: str) -> list[TopicPartition]:
        return [TopicPartition(topic, p) for p in range(self.partitions)]

    def end(self, topic: str) -> int:
        consumer = self._consumers["hbase-sync"]
        with self._lock:
            return sum(consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in self._parts(topic))

    def lag(self) -> dict[str, int]:
        """Records not yet committed by each group (end offset - committed offset, summed)."""
        out = {}
        for name, (_, topics) in self._groups.items():
            parts = [tp for t in topics for tp in self._parts(t)]
            with self._lock:
                committed = self._consumers[name].committed(parts, timeout=10)
                ends = [self._consumers[name].get_watermark_offsets(tp, timeout=10)[1] for tp in parts]
            out[name] = sum(end - max(0, c.offset) for end, c in zip(ends, committed, strict=True))
        return out

    def close(self) -> None:
        for consumer in self._consumers.values():
            consumer.close()


def rows_written(ports: tuple[int, ...]) -> dict[str, float]:
    """Rows written per table, summed over the sync workers (their Prometheus /metrics)."""
    total: dict[str, float] = {}
    for port in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            for table, value in _WRITTEN.findall(r.read().decode()):
                total[table] = total.get(table, 0.0) + float(value)
    return total


@dataclass
class Usage:
    cpu_s: float
    rss: int


def usage(pids: dict[str, int]) -> dict[str, Usage]:
    """CPU seconds (user + system) and RSS of each component's whole process tree."""
    out = {}
    for name, pid in pids.items():
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        cpu, rss = 0.0, 0
        for proc in procs:
            try:
                times = proc.cpu_times()
                cpu += times.user + times.system
                rss += proc.memory_info().rss
            except psutil.NoSuchProcess:
                continue
        out[name] = Usage(cpu, rss)
    return out


@dataclass
class ProbeLog:
    reading_s: dict[int, float] = field(default_factory=dict)  # reading index -> seconds from due to readable
    day_s: dict[date, float] = field(default_factory=dict)  # day -> seconds from its next day's first reading
    missing: int = 0


class HBaseProber(Background):
    """Looks up sampled readings (``PROBES_PER_S`` per second) and site0000's daily aggregate as they fall due."""

    def __init__(self, host: str, port: int, plan: Plan, start_wall: float) -> None:
        super().__init__("hbase-prober")
        self.plan, self.start_wall = plan, start_wall
        self.log = ProbeLog()
        self._conn = happybase.Connection(host, port, timeout=30_000)

    def stop(self, timeout: float = 60.0) -> None:
        super().stop(timeout)
        self._conn.close()

    def _samples(self) -> list[int]:
        out: list[int] = []
        for step in self.plan.steps:
            every = max(1, step.rate // PROBES_PER_S)
            out.extend(range(step.start_index + every // 2, step.end_index, every))
        return out

    def _due(self, i: int) -> float:
        return self.start_wall + self.plan.due_s(i)

    def _run(self) -> None:
        raw = self._conn.table(layout.table_name("iotpipe", "raw"))
        aggregates = self._conn.table(layout.table_name("iotpipe", "aggregates"))
        samples, nxt = self._samples(), 0
        readings = HeadProbes(give_up_s=PROBE_GIVE_UP_S)
        days: dict[bytes, date] = {}
        day = self.plan.base.date()
        while not self._stop.is_set():
            now = time.time()
            while nxt < len(samples) and self._due(samples[nxt]) <= now:
                site, sensor, seq, ts_ms = self.plan.reading(samples[nxt])
                readings.add(site, layout.reading_key(site, sensor, ts_ms, seq), samples[nxt], self._due(samples[nxt]))
                nxt += 1
            while self.plan.first_of_day(day + timedelta(days=1)) < self.plan.total and \
                    self._due(self.plan.first_of_day(day + timedelta(days=1))) <= now:
                days[layout.aggregate_key(site_name(0), AGGREGATE, day.isoformat())] = day
                day += timedelta(days=1)
            self.log.reading_s.update(readings.poll(lambda keys: _present(raw, keys), time.time))
            self.log.missing = readings.missing
            self._look_days(aggregates, days)
            self._stop.wait(PROBE_POLL_S)

    def _look_days(self, table: happybase.Table, pending: dict[bytes, date]) -> None:
        if not pending:
            return
        now = time.time()
        for key in _present(table, pending):
            d = pending.pop(key)
            self.log.day_s[d] = now - self._due(self.plan.first_of_day(d + timedelta(days=1)))


def _present(table: happybase.Table, keys: Iterable[bytes]) -> set[bytes]:
    """The keys of `keys` that have a row in `table` (one Thrift call)."""
    return {key for key, _ in table.rows(list(keys), columns=[layout.MESSAGE_COLUMN])}
