"""Helpers for the sync worker's tests against the REAL Kafka and HBase: input data with independently computed
expected rows, a transactional producer (the stream job's way of writing), the worker as a subprocess, HBase reads.

Expected row keys are computed here from the documented layout rule, not with hbase_sync or iotcommon.hbase_layout:
    <crc32("<site>/<series>") % 16 as 2 hex digits>|<site>|<series>|<order part>
"""

from __future__ import annotations

import base64
import calendar
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from iotcommon.topics import Topics

UNIT = {"TH1": "C", "TH2": "C", "HVAC1": "Wh", "W1": "l"}


def salted(site: str, series: str, order: str) -> bytes:
    return f"{zlib.crc32(f'{site}/{series}'.encode()) % 16:02x}|{site}|{series}|{order}".encode()


def epoch_ms(ts: str) -> int:
    dt = datetime.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")
    frac = ts[20:-1] if len(ts) > 20 else ""
    return calendar.timegm(dt.timetuple()) * 1000 + int((frac + "000")[:3])


def reading(site: str, sensor: str, step: int, value: float) -> dict[str, Any]:
    minutes = 15 * step
    ts = f"2020-01-{1 + minutes // 1440:02d}T{minutes // 60 % 24:02d}:{minutes % 60:02d}:00Z"
    return {"v": 1, "site": site, "sensor": sensor, "ts": ts, "value": value, "unit": UNIT[sensor], "seq": step}


def reading_row(r: dict[str, Any]) -> bytes:
    return salted(r["site"], r["sensor"], f"{epoch_ms(r['ts']):013d}|{r['seq']:010d}")


def aggregate(site: str, sensor: str, day: str, revision: int) -> dict[str, Any]:
    return {"v": 1, "site": site, "name": f"AggDay[{sensor}]", "kind": "AggDay", "sensor": sensor, "day": day,
            "value": 10.0 + revision, "unit": UNIT[sensor], "count": 96, "revision": revision,
            "window_start": f"{day}T00:00:00Z", "window_end": f"{day}T23:59:59Z", "emitted_at": "2026-01-01T00:00:00Z"}


def enc(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Expected:
    """Rows each table must hold at the end: table -> {row key: d:m}. Dead letters made by the worker are checked by
    their fields (reason, where the record was, its bytes), since the worker writes them."""

    rows: dict[str, dict[bytes, bytes]] = field(default_factory=lambda: {t: {} for t in
                                                                          ("raw", "aggregates", "late", "deadletters")})
    rejected: dict[tuple[str, int, int], tuple[str, bytes]] = field(default_factory=dict)  # (topic,part,off) -> reason

    def count(self) -> int:
        return sum(len(v) for v in self.rows.values()) + len(self.rejected)


def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(n, partitions, 1) for n in names], request_timeout=60)
        wait(futures.values())  # every request answered before the block destroys the client
        for future in futures.values():
            future.result()


class TxProducer:
    """A transactional producer, as the stream job writes its outputs. Records sent in ``abort()`` never count."""

    def __init__(self, bootstrap: str, txid: str) -> None:
        self.p = Producer({"bootstrap.servers": bootstrap, "transactional.id": txid, "linger.ms": 5})
        self.p.init_transactions(60)
        self.offsets: list[tuple[str, int, int]] = []

    def _deliver(self, err: Any, msg: Any) -> None:
        assert err is None, err
        self.offsets.append((msg.topic(), msg.partition(), msg.offset()))

    def send(self, records: list[tuple[str, bytes | None, bytes | None]], *, commit: bool = True) -> list[
            tuple[str, int, int]]:
        """Send (topic, key, value) records in one transaction; returns where each landed (commit only)."""
        self.offsets = []
        self.p.begin_transaction()
        for topic, key, value in records:
            self.p.produce(topic, value, key, on_delivery=self._deliver)
        self.p.flush(60)
        if commit:
            self.p.commit_transaction(60)
        else:
            self.p.abort_transaction(60)
        return list(self.offsets)


Record = tuple[str, bytes | None, bytes | None]  # topic, key, value


def workload(prefix: str, *, sites: int, steps: int, seed: int = 0) -> tuple[list[Record], Expected]:
    """A mix of every input topic with the rows it must produce. Aggregate revisions arrive out of order for some
    keys (the highest must win); some raw records are garbage (they must become dead letters)."""
    exp = Expected()
    out: list[tuple[str, bytes | None, bytes | None]] = []
    for step in range(steps):
        for s in range(sites):
            site = f"site{seed}-{s}"
            for sensor in ("TH1", "HVAC1", "W1"):
                r = reading(site, sensor, step, float(step * 10 + s))
                payload = enc(r)
                out.append((f"{prefix}.raw", f"{site}/{sensor}".encode(), payload))
                exp.rows["raw"][reading_row(r)] = payload
            if step % 7 == 3:
                late = {"v": 1, "reading": reading(site, "W1", step, 1.0), "reason": "beyond-allowed-lateness",
                        "day": "2020-01-01", "late_by_ms": 1000 + step}
                out.append((f"{prefix}.late", f"{site}/W1".encode(), enc(late)))
                exp.rows["late"][reading_row(late["reading"])] = enc(late)
    for s in range(sites):
        site = f"site{seed}-{s}"
        for d, revisions in enumerate(([1, 2, 3], [2, 1], [1], [3, 1, 2])):
            day = f"2020-01-{d + 1:02d}"
            for rev in revisions:
                payload = enc(aggregate(site, "TH1", day, rev))
                out.append((f"{prefix}.aggregates", f"{site}/AggDay[TH1]/{day}".encode(), payload))
            exp.rows["aggregates"][salted(site, "AggDay[TH1]", day)] = enc(aggregate(site, "TH1", day,
                                                                                    max(revisions)))
        letter = {"v": 1, "reason": "unknown-sensor", "detail": "unknown sensor 'X'",
                  "source_topic": f"{prefix}.readings", "partition": s % 2, "offset": 1000 + s, "key_b64": None,
                  "payload_b64": base64.b64encode(b'{"sensor":"X"}').decode(), "at": "2026-01-01T00:00:00Z"}
        out.append((f"{prefix}.deadletter", None, enc(letter)))
        exp.rows["deadletters"][salted(f"{prefix}.readings", str(s % 2), f"{1000 + s:019d}")] = enc(letter)
    return out, exp


def garbage(prefix: str, n: int) -> list[tuple[str, bytes | None, bytes | None]]:
    return [(f"{prefix}.raw", b"bad/key", b"not json %d" % i) for i in range(n)]


# -- HBase -----------------------------------------------------------------------------------------------------------

def read_tables(hbase: Any, table_prefix: str) -> dict[str, dict[bytes, bytes]]:
    conn = hbase.connection(table_prefix=table_prefix, timeout=60_000)
    try:
        out: dict[str, dict[bytes, bytes]] = {}
        names = {bytes(t).decode() for t in conn.tables()}
        for table in ("raw", "aggregates", "late", "deadletters"):
            if table not in names:
                out[table] = {}
                continue
            out[table] = {k: v[b"d:m"] for k, v in conn.table(table).scan(columns=[b"d:m"], batch_size=2000)}
        return out
    finally:
        conn.close()


def count_rows(hbase: Any, table_prefix: str) -> int:
    try:
        return sum(len(v) for v in read_tables(hbase, table_prefix).values())
    except Exception:  # Thrift may be down on purpose while we poll
        return -1


def assert_exactly(expected: Expected, tables: dict[str, dict[bytes, bytes]]) -> None:
    """Every expected row, with its exact content, and nothing else."""
    for table in ("raw", "aggregates", "late"):
        got, want = tables[table], expected.rows[table]
        assert set(got) == set(want), (f"{table}: {len(set(want) - set(got))} missing, "
                                       f"{len(set(got) - set(want))} unexpected")
        diff = [k for k in want if got[k] != want[k]]
        assert not diff, f"{table}: {len(diff)} rows differ, e.g. {diff[0]!r}: {got[diff[0]]!r} != {want[diff[0]]!r}"
    letters = dict(tables["deadletters"])
    for key, payload in expected.rows["deadletters"].items():
        assert letters.pop(key, None) == payload, f"dead letter {key!r} missing or different"
    rejected = {}
    for raw in letters.values():
        d = json.loads(raw)
        rejected[(d["source_topic"], d["partition"], d["offset"])] = (d["reason"], base64.b64decode(d["payload_b64"]))
    assert rejected == expected.rejected


# -- Kafka group -----------------------------------------------------------------------------------------------------

_COORDINATOR_MOVING = {KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                       KafkaError.COORDINATOR_NOT_AVAILABLE}


def committed_offsets(consumer: Consumer, tps: list[TopicPartition], attempts: int = 30) -> list[TopicPartition]:
    """The group's committed offsets, retried while the group coordinator moves or loads (a fresh or restarted
    broker answers NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS for a while; that is not what a test checks)."""
    for attempt in range(attempts):
        try:
            result: list[TopicPartition] = consumer.committed(tps, timeout=30)
            return result
        except KafkaException as exc:
            error = exc.args[0]
            transient = error.retriable() or error.code() in _COORDINATOR_MOVING
            if attempt == attempts - 1 or not transient:
                raise
            time.sleep(1)
    raise AssertionError("unreachable")


def group_lag(bootstrap: str, group: str, topics: list[str], partitions: int) -> int:
    """Records of these topics not yet committed by the group (end offset - committed offset, summed)."""
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "isolation.level": "read_committed"})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        committed = committed_offsets(c, tps)
        lag = 0
        for tp in committed:
            _low, high = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30)
            lag += high - max(tp.offset, 0)
        return lag
    finally:
        c.close()


# -- the worker as a subprocess ---------------------------------------------------------------------------------------

@dataclass
class WorkerProcess:
    """``python -m hbase_sync`` with env settings; its log goes to a file."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "hbase_sync"], env={**os.environ, **self.env},
                                     stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(30)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM and wait: the graceful path (flush, commit, leave). Returns the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)
            raise
        finally:
            self._log.close()


def worker_env(bootstrap: str, hbase: Any, prefix: str, table_prefix: str, group: str) -> dict[str, str]:
    return {
        "IOTPIPE_KAFKA_BOOTSTRAP": bootstrap,
        "IOTPIPE_TOPIC_PREFIX": prefix,
        "IOTPIPE_HBASE_HOST": hbase.thrift_host,
        "IOTPIPE_HBASE_PORT": str(hbase.thrift_port),
        "IOTPIPE_TABLE_PREFIX": table_prefix,
        "IOTPIPE_SYNC_GROUP": group,
        "IOTPIPE_SYNC_HTTP_HOST": "127.0.0.1",
        "IOTPIPE_SYNC_HTTP_PORT": "0",
        "IOTPIPE_SYNC_SESSION_TIMEOUT_MS": "6000",  # the broker's minimum: a killed worker's partitions move soon
        "IOTPIPE_SYNC_BATCH_SIZE": "500",
        "IOTPIPE_SYNC_BATCH_MS": "200",
        "IOTPIPE_SYNC_BACKOFF_MAX_MS": "2000",
        "IOTPIPE_LOG_LEVEL": "INFO",
    }


@contextmanager
def workers(*procs: WorkerProcess) -> Iterator[tuple[WorkerProcess, ...]]:
    """Stop every worker at the end, whatever happens in the test."""
    try:
        yield procs
    finally:
        for w in procs:
            if w.running():
                w.proc.kill()  # type: ignore[union-attr]
                w.proc.wait(30)  # type: ignore[union-attr]


def wait_until(what: str, check: Callable[[], bool], timeout: float = 300, every: float = 0.5,
               context: Callable[[], str] = lambda: "") -> None:
    """Poll until check() is true; fail with ``what`` and some context after ``timeout`` seconds (a safety net
    against hanging, not a performance assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise AssertionError(f"gave up waiting for: {what}\n{context()}")


class Trickle(threading.Thread):
    """Sends batches of records in committed transactions, one batch every ``pause`` seconds: a stream."""

    def __init__(self, producer: TxProducer, records: list[tuple[str, bytes | None, bytes | None]], batches: int,
                 pause: float) -> None:
        super().__init__(daemon=True)
        self.producer, self.records, self.batches, self.pause = producer, records, batches, pause
        self.sent = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            size = -(-len(self.records) // self.batches)
            for i in range(0, len(self.records), size):
                self.producer.send(self.records[i:i + size])
                self.sent += len(self.records[i:i + size])
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc


def http_get(url: str) -> str:
    assert url.startswith("http://127.0.0.1:")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback http, checked above)
        return str(response.read().decode())


def committed(bootstrap: str, group: str, topics: list[str], partitions: int) -> dict[tuple[str, int], int]:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        tps = committed_offsets(c, [TopicPartition(t, p) for t in topics for p in range(partitions)])
        return {(tp.topic, tp.partition): tp.offset for tp in tps}
    finally:
        c.close()


def assignment_from_log(log: str) -> set[tuple[str, int]]:
    """The partitions a worker holds according to its 'assigned ...' / 'revoked ...' / 'lost ...' log lines."""
    held: set[tuple[str, int]] = set()
    for line in log.splitlines():
        m = re.search(r" (assigned|revoked|lost) (.*)$", line)
        if not m:
            continue
        parts = {(t, int(p)) for t, p in re.findall(r"([\w.-]+)\[(\d+)\]", m.group(2))}
        held = held | parts if m.group(1) == "assigned" else held - parts
    return held


def rows_written_from_log(log: str) -> int:
    m = re.search(r"stopped: (\d+) rows written", log)
    assert m, log[-3000:]
    return int(m.group(1))


def topic_names(prefix: str) -> list[str]:
    """The stream job's output topics of one pipeline: what the sync worker consumes."""
    topics = Topics(prefix)
    return [topics.raw, topics.aggregates, topics.late, topics.deadletter]
