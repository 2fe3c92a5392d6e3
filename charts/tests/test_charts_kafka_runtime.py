"""The platform chart's Kafka pod, run as a plain process: no container engine runs here, so this test turns the
StatefulSet's KAFKA_* environment into server.properties with the apache/kafka image's rule (strip KAFKA_, lower-case,
`___` -> `-`, `__` -> `_`, `_` -> `.`), formats the storage with CLUSTER_ID as the image does, and starts the same
Kafka release (the local stack's kafka_2.13 jars, the version of the image tag). A transactional producer and a
read_committed consumer then go through it, which needs the chart's internal-topic replication settings to fit.

Differences from the pod, forced by the test rules: the pod's DNS name becomes 127.0.0.1, listeners bind to loopback,
ports are free loopback ports (set through the chart's own values), and the log directory is a temporary one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from iotpipe_stack import probes
from iotpipe_stack.install import fetch_bundle, find_java
from iotpipe_stack.ports import free_ports
from iotpipe_stack.settings import resolve

pytestmark = [pytest.mark.helm, pytest.mark.kafka, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN_S = 180.0  # a bound on waiting for start-up, not a performance assertion
#: KAFKA_* variables the image's start script reads itself instead of turning them into properties
NOT_PROPERTIES = {"KAFKA_HEAP_OPTS", "KAFKA_OPTS", "KAFKA_LOG4J_OPTS", "KAFKA_JMX_OPTS", "KAFKA_JVM_PERFORMANCE_OPTS",
                  "KAFKA_GC_LOG_OPTS", "KAFKA_JMX_PORT", "KAFKA_JMX_HOSTNAME", "KAFKA_VERSION"}  # fmt: skip


def property_name(env_name: str) -> str:
    """The apache/kafka image's env -> property rule."""
    name = env_name.removeprefix("KAFKA_").lower()
    return name.replace("___", "\0").replace("__", "\1").replace("_", ".").replace("\0", "-").replace("\1", "_")


def test_property_name_follows_the_image_rule() -> None:
    assert property_name("KAFKA_LOG_DIRS") == "log.dirs"
    assert property_name("KAFKA_LOG_CLEANER_DEDUPE__BUFFER___X") == "log.cleaner.dedupe_buffer-x"
    assert property_name("KAFKA_NODE_ID") == "node.id"


def pod_environment(container: dict[str, Any], pod_name: str, pod_index: int) -> dict[str, str]:
    """Resolve the container's env as the kubelet would for pod <pod_name> (fieldRefs, $(VAR) references)."""
    env: dict[str, str] = {}
    for item in container["env"]:
        if "value" in item:
            value = str(item["value"])
        else:
            path = item["valueFrom"]["fieldRef"]["fieldPath"]
            value = {"metadata.name": pod_name,
                     "metadata.labels['apps.kubernetes.io/pod-index']": str(pod_index)}[path]  # fmt: skip
        for name, resolved in env.items():
            value = value.replace(f"$({name})", resolved)
        env[item["name"]] = value
    return env


def test_chart_kafka_pod_runs_kraft_and_serves_transactions(helm: Any, tmp_path: Path) -> None:
    port, controller_port = free_ports(2)
    values = {"kafka": {"port": port, "controllerPort": controller_port, "heap": "384m",
                        "persistence": {"enabled": False}},
              "hbase": {"enabled": False}, "grafana": {"enabled": False}}  # fmt: skip
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    docs = helm.render("iotpipe-platform", values=[values_file], release="kt", namespace="ns")
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    pod_name = f"{sts['metadata']['name']}-0"
    env = pod_environment(container, pod_name, 0)

    pod_dns = f"{pod_name}.{sts['spec']['serviceName']}.ns.svc"
    data = tmp_path / "data"
    props = {}
    for name, value in env.items():
        if not name.startswith("KAFKA_") or name in NOT_PROPERTIES:
            continue
        value = value.replace(pod_dns, "127.0.0.1").replace("://:", "://127.0.0.1:")
        props[property_name(name)] = value
    assert props["log.dirs"] == "/var/lib/kafka/data"
    props["log.dirs"] = str(data)
    assert props["controller.quorum.voters"] == f"0@127.0.0.1:{controller_port}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{port}"
    config = tmp_path / "server.properties"
    config.write_text("".join(f"{k}={v}\n" for k, v in sorted(props.items())), encoding="utf-8")
    log4j = tmp_path / "log4j2.properties"
    log4j.write_text(
        "rootLogger = WARN,console\nappender.console.type = Console\nappender.console.name = console\n"
        "appender.console.layout.type = PatternLayout\nappender.console.layout.pattern = %m%n\n",
        encoding="utf-8",
    )

    lib = fetch_bundle(resolve(os.environ, {}).cache, "kafka")
    java = str(find_java().executable)
    jvm = [java, *env["KAFKA_HEAP_OPTS"].split(), f"-Dlog4j2.configurationFile={log4j.as_uri()}", "-cp", f"{lib}/*"]
    fmt = subprocess.run([*jvm, "kafka.tools.StorageTool", "format", "-t", env["CLUSTER_ID"], "-c", str(config)],
                         capture_output=True, text=True, check=False, timeout=120)  # fmt: skip
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr

    log = tmp_path / "kafka.log"
    bootstrap = f"127.0.0.1:{port}"
    with log.open("wb") as out:
        broker = subprocess.Popen([*jvm, "kafka.Kafka", str(config)], stdout=out, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)  # fmt: skip
        try:
            deadline = time.monotonic() + READY_WITHIN_S
            while not probes.kafka_ready(bootstrap):
                if broker.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"Kafka from the chart's env did not start (exit {broker.poll()}):\n"
                                f"{log.read_text(errors='replace')[-4000:]}")  # fmt: skip
                time.sleep(1)
            roundtrip_with_transactions(bootstrap)
        finally:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                broker.kill()
                broker.wait(timeout=30)


def roundtrip_with_transactions(bootstrap: str) -> None:
    topic = f"chart_probe_{uuid.uuid4().hex[:8]}"
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)],
                            request_timeout=60)[topic].result()

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"{topic}-tx"})
    producer.init_transactions(60)
    producer.begin_transaction()
    for i in range(10):
        producer.produce(topic, key=str(i).encode(), value=f"v{i}".encode())
    producer.commit_transaction(60)

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-g", "auto.offset.reset": "earliest",
                         "isolation.level": "read_committed", "enable.auto.commit": False})  # fmt: skip
    consumer.subscribe([topic])
    values: list[bytes] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < 10 and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                values.append(msg.value())
    finally:
        consumer.close()
    assert sorted(values) == sorted(f"v{i}".encode() for i in range(10))
