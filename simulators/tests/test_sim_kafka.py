"""The simulator process against the REAL Kafka broker: read-back, broker restart mid-run, SIGTERM, broker down."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from confluent_kafka import Consumer, TopicPartition
from referencing import Registry, Resource

from iot_simulators.config import SimConfig
from iot_simulators.encoding import Encoder, site_id
from iot_simulators.engine import Simulation
from iot_simulators.late import parse_rules
from iot_simulators.producer import KafkaSink
from iot_simulators.timeline import Timeline
from iotcommon.config import load
from iotcommon.messages import SCHEMA_FILES, load_schema
from iotpipe_stack.ports import free_ports
from iotpipe_stack.testing import KafkaService

TZ = ZoneInfo("Europe/Athens")
START = "2020-01-01T00:00"
LATE = ("20:2d", "120:10d")


def simulator(args: list[str], log: Path, bootstrap: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOTPIPE_")}
    env["IOTPIPE_KAFKA_BOOTSTRAP"] = bootstrap
    return subprocess.Popen([sys.executable, "-m", "iot_simulators", "--start", START, "--seed", "9",
                             "--progress-s", "1", *args], stdout=log.open("wb"), stderr=subprocess.STDOUT, env=env)


def expected(sites: int, steps: int, seed: int = 9) -> list[tuple[bytes, bytes]]:
    """What the process must send, computed by the pure simulation (same options)."""
    sim = Simulation(Timeline(datetime.fromisoformat(START).replace(tzinfo=TZ), TZ), list(range(1, sites + 1)),
                     seed, parse_rules(LATE))
    enc = Encoder([site_id(n) for n in sim.site_numbers])
    return enc.encode_all(sim.run(steps + 1)) + enc.encode_blocks(sim.drain())


def consume(bootstrap: str, topic: str, at_least: int) -> list[tuple[bytes, bytes]]:
    """Everything in the topic: reads until it has at_least messages and the end offsets are reached."""
    got: list[tuple[bytes, bytes]] = []
    with Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{topic}", "enable.auto.commit": False,
                   "auto.offset.reset": "earliest"}) as consumer:  # closed here whatever fails
        meta = consumer.list_topics(topic, timeout=30)
        parts = [TopicPartition(topic, p) for p in meta.topics[topic].partitions]
        ends = {p.partition: consumer.get_watermark_offsets(p, timeout=30)[1] for p in parts}
        consumer.assign([TopicPartition(topic, p.partition, 0) for p in parts])
        position = dict.fromkeys(ends, 0)
        for _ in range(600):  # bounded: at most 600 batches of up to 0.5 s
            for msg in consumer.consume(10_000, 0.5):
                assert msg.error() is None, msg.error()
                got.append((msg.key(), msg.value()))
                position[msg.partition()] = msg.offset() + 1
            if len(got) >= at_least and all(position[p] >= ends[p] for p in ends):
                break
    return got


def read_log(log: Path) -> str:
    return log.read_text(errors="replace")


def wait_for(text: str, log: Path, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(1200):
        if text in read_log(log):
            return
        assert proc.poll() is None, f"simulator exited ({proc.returncode}) before {text!r}:\n{read_log(log)}"
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared:\n{read_log(log)}")


def per_site(msgs: list[tuple[bytes, bytes]]) -> dict[bytes, list[bytes]]:
    out: dict[bytes, list[bytes]] = defaultdict(list)
    for key, value in msgs:
        out[key].append(value)
    return out


@pytest.mark.kafka
def test_readings_go_to_kafka_keyed_by_site_in_order(kafka_service: KafkaService, unique_name: Callable[[str], str],
                                                      tmp_path: Path) -> None:
    prefix = unique_name("sim")
    log = tmp_path / "sim.log"
    proc = simulator(["--topic-prefix", prefix, "--sites", "3", "--speed", "max", "--steps", str(12 * 96)], log,
                     kafka_service.bootstrap)
    assert proc.wait(timeout=600) == 0, read_log(log)
    want = expected(3, 12 * 96)
    got = consume(kafka_service.bootstrap, f"{prefix}.readings", len(want))
    assert len(got) == len(want)
    assert per_site(got) == per_site(want)  # same bytes, and each site's readings in send order
    registry: Registry = Registry()
    for filename in SCHEMA_FILES:
        registry = registry.with_resource(filename, Resource.from_contents(load_schema(filename)))
    check = jsonschema.Draft202012Validator(load_schema("reading.v1.json"), registry=registry)
    for key, value in got:
        obj = json.loads(value)
        check.validate(obj)
        assert key == obj["site"].encode()
    assert f"sent {len(want)} readings" in read_log(log)


@pytest.mark.kafka
@pytest.mark.slow
def test_a_broker_restart_mid_run_loses_and_duplicates_nothing(kafka_service: KafkaService,
                                                               unique_name: Callable[[str], str],
                                                               tmp_path: Path) -> None:
    prefix = unique_name("sim_restart")
    log = tmp_path / "sim.log"
    steps = 3 * 96
    # 10 steps per second: the run lasts about half a minute; the broker stops after the first progress line (1 s)
    # and comes back while the run goes on (or, on a slow machine, while it flushes: nothing may be lost either way)
    proc = simulator(["--topic-prefix", prefix, "--sites", "20", "--speed", "9000", "--steps", str(steps)], log,
                     kafka_service.bootstrap)
    try:
        wait_for("iot_simulators: progress:", log, proc)
        kafka_service.stop()
        assert proc.poll() is None, read_log(log)  # still producing while the broker is away
        time.sleep(3)
        kafka_service.start()
        assert proc.wait(timeout=600) == 0, read_log(log)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "WARNING iot_simulators.kafka: Kafka:" in read_log(log)  # the outage was seen (and retried through)
    want = expected(20, steps)
    got = consume(kafka_service.bootstrap, f"{prefix}.readings", len(want))
    ids = Counter((key, json.loads(value)["seq"]) for key, value in got)
    assert ids == Counter((key, json.loads(value)["seq"]) for key, value in want)  # nothing lost, nothing twice
    assert per_site(got) == per_site(want)  # and every site's order kept


@pytest.mark.kafka
def test_sigterm_flushes_what_was_produced_and_exits_0(kafka_service: KafkaService,
                                                       unique_name: Callable[[str], str], tmp_path: Path) -> None:
    prefix = unique_name("sim_term")
    log = tmp_path / "sim.log"
    proc = simulator(["--topic-prefix", prefix, "--sites", "5", "--speed", "90000"], log, kafka_service.bootstrap)
    try:
        wait_for("iot_simulators: progress:", log, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=300) == 0, read_log(log)
    finally:
        if proc.poll() is None:
            proc.kill()
    text = read_log(log)
    assert "SIGTERM received" in text and "done (signal)" in text
    sent = int(text.split("done (signal): sent ")[1].split(" ")[0])
    got = consume(kafka_service.bootstrap, f"{prefix}.readings", sent)
    assert len(got) == sent
    assert len({(k, json.loads(v)["sensor"], json.loads(v)["seq"]) for k, v in got}) == sent  # no reading twice


@pytest.mark.kafka
def test_a_broker_that_stays_away_fails_the_run_after_the_delivery_timeout(
        kafka_service: KafkaService, unique_name: Callable[[str], str], tmp_path: Path) -> None:
    prefix = unique_name("sim_gone")
    log = tmp_path / "sim.log"
    proc = simulator(["--topic-prefix", prefix, "--sites", "5", "--speed", "9000", "--delivery-timeout-s", "5"], log,
                     kafka_service.bootstrap)
    try:
        wait_for("iot_simulators: progress:", log, proc)
        kafka_service.stop()
        assert proc.wait(timeout=300) == 1, read_log(log)
    finally:
        if proc.poll() is None:
            proc.kill()
        kafka_service.start()
    text = read_log(log)
    assert "could not be delivered within 5 s" in text
    assert "failed:" in text


def test_broker_down_at_start_retries_visibly_then_fails(tmp_path: Path) -> None:
    (port,) = free_ports(1)  # nothing listens there
    log = tmp_path / "sim.log"
    proc = simulator(["--connect-timeout-s", "4"], log, f"127.0.0.1:{port}")
    assert proc.wait(timeout=120) == 1
    text = read_log(log)
    assert "waiting for Kafka" in text
    assert "not reachable after 4 s" in text


def test_closing_the_sink_destroys_its_producer_at_once_and_counts_what_it_dropped() -> None:
    """close() destroys the producer in the caller's thread, not the garbage collector whenever it breaks the
    sink-producer cycle (the callbacks are the sink's methods); what no broker took is dropped and counted, not
    waited for."""
    (port,) = free_ports(1)  # nothing listens there
    sink = KafkaSink(load(SimConfig, [], {"IOTPIPE_KAFKA_BOOTSTRAP": f"127.0.0.1:{port}"}))
    for seq in range(3):
        sink.produce("readings", value=f"reading {seq}".encode(), key=b"site1")
    sink.close()
    assert sink.failed == 3 and sink.broken
    with pytest.raises(RuntimeError, match="closed"):
        sink.produce("readings", value=b"one more", key=b"site1")
