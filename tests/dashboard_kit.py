"""The real bridge for the dashboard's browser tests: `python -m ws_bridge` as its own process on the real Kafka and
HBase (the session fixtures), its own topics and tables, and a producer that writes messages to its topics.
Imported by path (tests/ is not a package), like browser_kit.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import wait
from pathlib import Path
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from iotcommon import hbase_layout as layout
from iotcommon.topics import Topics
from iotpipe_stack.ports import free_ports

REPO = Path(__file__).resolve().parents[1]
WAIT = 300.0
BIG = 4 * 1024 * 1024


# --- the bridge --------------------------------------------------------------------------


class Bridge:
    def __init__(self, url: str, topics: Topics, producer: Producer, log: Path) -> None:
        self.url = url
        self.topics = topics
        self.producer = producer
        self.log = log

    def send(self, stream: str, *messages: dict[str, Any]) -> None:
        topic = {"raw": self.topics.raw, "aggregates": self.topics.aggregates, "late": self.topics.late,
                 "deadletters": self.topics.deadletter}[stream]
        for message in messages:
            self.producer.produce(topic, value=json.dumps(message).encode())
        assert self.producer.flush(60) == 0, "Kafka did not take the messages"


@contextlib.contextmanager
def run_bridge(kafka_service: Any, hbase_service: Any, log_dir: Path, **env_vars: str) -> Iterator[Bridge]:
    """`python -m ws_bridge` on its own topics (room for 4 MB messages) and HBase tables; stopped and cleaned up on
    exit. ``env_vars`` are extra settings, e.g. IOTPIPE_BRIDGE_TOKEN."""
    prefix = f"dash{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    big = {"max.message.bytes": str(4 * BIG)}  # room for the 4 MB values (the broker default is 1 MB)
    names = [topics.raw, topics.aggregates, topics.late, topics.deadletter]
    with AdminClient({"bootstrap.servers": kafka_service.bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(n, num_partitions=1, replication_factor=1, config=big)
                                       for n in names], request_timeout=60)
        wait(futures.values())  # every request answered before the block destroys the client
        for future in futures.values():
            future.result()
    conn = hbase_service.connection()
    for table in layout.TABLES:
        conn.create_table(layout.table_name(prefix, table), {layout.FAMILY: {"max_versions": 1}})
    (port,) = free_ports(1)
    log_path = log_dir / "bridge.log"
    env = {**os.environ, "IOTPIPE_KAFKA_BOOTSTRAP": kafka_service.bootstrap, "IOTPIPE_TOPIC_PREFIX": prefix,
           "IOTPIPE_HBASE_HOST": hbase_service.thrift_host, "IOTPIPE_HBASE_PORT": str(hbase_service.thrift_port),
           "IOTPIPE_TABLE_PREFIX": prefix, "IOTPIPE_BRIDGE_PORT": str(port), "IOTPIPE_SITE_TZ": "UTC",
           "PYTHONUNBUFFERED": "1", **env_vars}
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "ws_bridge"], env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, cwd=REPO)
    producer = Producer({"bootstrap.servers": kafka_service.bootstrap, "message.max.bytes": 4 * BIG,
                         "linger.ms": 0})
    try:
        url = f"http://127.0.0.1:{port}/"
        deadline = time.monotonic() + WAIT
        while not _ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the bridge did not become ready:\n{log_path.read_text()[-4000:]}")
            time.sleep(1)
        yield Bridge(url, topics, producer, log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        for table in layout.TABLES:
            conn.delete_table(layout.table_name(prefix, table), disable=True)
        conn.close()
        with AdminClient({"bootstrap.servers": kafka_service.bootstrap}) as admin:
            futures = admin.delete_topics(names, request_timeout=60)
            wait(futures.values())  # every request answered before the block destroys the client
            for future in futures.values():
                future.result()


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            return bool(response.status == 200)
    except OSError:
        return False


# --- messages (written as plain JSON here, independent of the code under test) ------------------------------------


def reading(site: str, sensor: str, ts: str, value: float, unit: str, seq: int) -> dict[str, Any]:
    return {"v": 1, "site": site, "sensor": sensor, "ts": ts, "value": value, "unit": unit, "seq": seq}


def aggregate(site: str, name: str, unit: str, day: str = "2020-01-01", value: float = 21.5,
              revision: int = 1) -> dict[str, Any]:
    return {"v": 1, "site": site, "name": name, "kind": "AggDay", "sensor": "TH1", "day": day, "value": value,
            "unit": unit, "count": 96, "revision": revision, "window_start": "2019-12-31T23:00:00Z",
            "window_end": "2020-01-01T23:00:00Z", "emitted_at": "2026-01-01T00:00:00Z"}


def late(site: str, reason: str, day: str, seq: int, unit: str = "l") -> dict[str, Any]:
    return {"v": 1, "reading": reading(site, "W1", "2020-01-01T10:15:00Z", 0.5, unit, seq), "reason": reason,
            "day": day, "late_by_ms": 600000}


def dead(reason: str, source_topic: str, offset: int, detail: str = "not JSON",
         payload: bytes = b"not json") -> dict[str, Any]:
    return {"v": 1, "reason": reason, "detail": detail, "source_topic": source_topic, "partition": 0,
            "offset": offset, "key_b64": None, "payload_b64": base64.b64encode(payload).decode(),
            "at": "2020-01-02T00:00:00Z"}
