"""The images `make images` builds run under a real container engine (podman + runc), as the charts run them.

Each image starts its own entrypoint with `--help` as its own numeric non-root user, with every capability dropped,
no privilege escalation and, where a chart sets it, a read-only root filesystem. The Kafka image starts a real
broker in a container that answers a metadata request on loopback; the Flink-based stream-job image runs its
entrypoint's usage, the Flink CLI and the job's own `--help`.

The images are built (or found unchanged) by `python -m iotpipe_stack.images --no-load`; `make test` runs
`make images` first, so here that is a cache check. Expected outputs are the programs' own usage lines.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from iotpipe_stack import image_specs
from iotpipe_stack.images import chart_app_version
from iotpipe_stack.podman import Podman, podman_ulimits
from iotpipe_stack.ports import free_ports

pytestmark = [pytest.mark.images]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: images whose container the charts run with readOnlyRootFilesystem: true
READ_ONLY = {"operator", "hbase"}
#: (image, argv after the image, text its output must contain, expected exit code)
HELP_RUNS = [
    ("operator", ["--help"], "Usage: kopf run", 0),
    ("simulator", ["--help"], "usage:", 0),
    ("hbase-sync", ["--help"], "usage:", 0),
    ("ws-bridge", ["--help"], "usage:", 0),
    ("hbase", ["--help"], "Usage: Master [opts] start|stop|clear", 1),  # HMaster prints usage and exits 1
    ("kafka", ["--help"], "KAFKA_<NAME>", 0),
    ("stream-job", ["help"], "(jobmanager|standalone-job|taskmanager|history-server)", 0),
    ("stream-job", ["python", "-m", "stream_job", "--help"], "usage:", 0),
    ("stream-job", ["flink", "--version"], "Version: 2.2.1", 0),
]


@pytest.fixture(scope="session")
def podman() -> Podman:
    return Podman()


@pytest.fixture(scope="session")
def image_refs() -> dict[str, str]:
    """Every project image, built or found unchanged (cached by its inputs digest)."""
    proc = subprocess.run([sys.executable, "-m", "iotpipe_stack.images", "--no-load"], capture_output=True, text=True,
                          check=False, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, timeout=3600)  # fmt: skip
    assert proc.returncode == 0, f"make images failed:\n{(proc.stdout + proc.stderr)[-4000:]}"
    tag = chart_app_version()
    return {p.name: p.ref(tag) for p in image_specs.PROJECT_IMAGES}


def run_container(podman: Podman, ref: str, args: list[str], *, read_only: bool, extra: list[str] | None = None,
                  timeout: float = 600) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """`podman run` under a "restricted"-like security context: the image's own user, no capabilities."""
    cmd = podman.cmd("run", "--rm", *podman_ulimits(), "--cap-drop=ALL", "--security-opt=no-new-privileges",
                     "--network=none", *(["--read-only"] if read_only else []), *(extra or []), ref, *args)  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=timeout)


def config_user(podman: Podman, ref: str) -> str:
    out = subprocess.run(podman.cmd("image", "inspect", "--format", "{{json .Config.User}}", ref), capture_output=True,
                         text=True, check=True, timeout=120)  # fmt: skip
    return str(json.loads(out.stdout))


@pytest.mark.parametrize("name", [p.name for p in image_specs.PROJECT_IMAGES])
def test_image_runs_as_its_numeric_non_root_user(podman: Podman, image_refs: dict[str, str], name: str) -> None:
    ref = image_refs[name]
    user = config_user(podman, ref)
    uid = user.split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"{ref}: USER {user!r}"
    proc = run_container(podman, ref, ["-u"], read_only=True, extra=["--entrypoint", "id"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == uid


@pytest.mark.parametrize(("name", "args", "expected", "code"), HELP_RUNS,
                         ids=[f"{n}:{' '.join(a)}" for n, a, _, _ in HELP_RUNS])  # fmt: skip
def test_image_entrypoint_answers(podman: Podman, image_refs: dict[str, str], name: str, args: list[str],
                                  expected: str, code: int) -> None:  # fmt: skip
    proc = run_container(podman, image_refs[name], args, read_only=name in READ_ONLY)
    out = proc.stdout + proc.stderr
    assert expected.lower() in out.lower(), f"{name} {args} (exit {proc.returncode}):\n{out[-3000:]}"
    assert proc.returncode == code, out[-3000:]


def test_flink_entrypoint_starts_a_standalone_job_cluster_configured_from_the_environment(
    podman: Podman, image_refs: dict[str, str]
) -> None:
    """`standalone-job` runs Flink's application cluster entrypoint with the environment applied to config.yaml; with
    no job jar on the classpath (the operator passes the job) it stops with Flink's own message."""
    env = ["--env", "FLINK_PROPERTIES=parallelism.default: 3\nstate.backend.type: hashmap",
           "--env", "TASK_MANAGER_NUMBER_OF_TASK_SLOTS=2", "--env", "JOB_MANAGER_RPC_ADDRESS=jm.example"]  # fmt: skip
    proc = run_container(podman, image_refs["stream-job"], ["standalone-job"], read_only=False, extra=env)
    out = proc.stdout + proc.stderr
    for expected in ("Loading configuration property: parallelism.default, 3",
                     "Loading configuration property: state.backend.type, hashmap",
                     "Loading configuration property: taskmanager.numberOfTaskSlots, 2",
                     "Loading configuration property: jobmanager.rpc.address, jm.example",
                     "Loading configuration property: rest.address, 0.0.0.0",
                     "StandaloneApplicationClusterEntryPoint",
                     "No JAR found on classpath"):  # fmt: skip
        assert expected in out, f"{expected!r} missing (exit {proc.returncode}):\n{out[-4000:]}"
    assert proc.returncode != 0


def test_operator_image_imports_its_handlers(podman: Podman, image_refs: dict[str, str]) -> None:
    """kopf's --help does not import the operator: import it as kopf would, in the read-only container."""
    proc = run_container(podman, image_refs["operator"], ["-c", "import iot_operator.handlers; print('imported')"],
                         read_only=True, extra=["--entrypoint", "python"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip() == "imported"


def test_bridge_image_serves_the_chart_library(podman: Podman, image_refs: dict[str, str]) -> None:
    """The bridge image carries uPlot from its npm build stage (fetched on the node stand-in)."""
    proc = run_container(podman, image_refs["ws-bridge"], ["/app/ws_bridge/static/vendor/uplot"], read_only=True,
                         extra=["--entrypoint", "ls"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert {"uPlot.iife.min.js", "uPlot.min.css", "LICENSE"} <= set(proc.stdout.split())


@pytest.fixture
def kafka_container(podman: Podman, image_refs: dict[str, str]) -> Iterator[tuple[str, str]]:
    """A Kafka container (host network, free loopback ports) configured only through KAFKA_* variables."""
    client_port, controller_port = free_ports(2)
    name = f"iotpipe-test-kafka-{uuid.uuid4().hex[:8]}"
    env = {
        "KAFKA_NODE_ID": "1",
        "CLUSTER_ID": "-W90cGlwZS10ZXN0LTAwMQ",  # a valid id may start with "-": it must not be read as an option
        "KAFKA_PROCESS_ROLES": "broker,controller",
        "KAFKA_LISTENERS": f"PLAINTEXT://127.0.0.1:{client_port},CONTROLLER://127.0.0.1:{controller_port}",
        "KAFKA_ADVERTISED_LISTENERS": f"PLAINTEXT://127.0.0.1:{client_port}",
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
        "KAFKA_INTER_BROKER_LISTENER_NAME": "PLAINTEXT",
        "KAFKA_CONTROLLER_QUORUM_VOTERS": f"1@127.0.0.1:{controller_port}",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
        "KAFKA_NUM_PARTITIONS": "3",
        # the chart's extra-config convention: dots -> _, underscores -> __, dashes -> ___
        "KAFKA_LOG_RETENTION_HOURS": "72",
        "KAFKA_IOTPIPE_TEST__KEY___NAME": "x",
        "KAFKA_HEAP_OPTS": "-Xmx256m -Xms256m",
    }
    cmd = podman.cmd("run", "--detach", "--rm", "--name", name, *podman_ulimits(), "--cap-drop=ALL",
                     "--security-opt=no-new-privileges", "--network=host",
                     *[a for k, v in env.items() for a in ("--env", f"{k}={v}")], image_refs["kafka"])  # fmt: skip
    started = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=300)
    assert started.returncode == 0, started.stderr
    try:
        yield name, f"127.0.0.1:{client_port}"
    finally:
        subprocess.run(podman.cmd("stop", "--time", "60", name), capture_output=True, check=False, timeout=300)
        subprocess.run(podman.cmd("rm", "--force", "--ignore", name), capture_output=True, check=False, timeout=300)


def test_kafka_image_starts_a_broker_that_answers_metadata(podman: Podman, kafka_container: tuple[str, str]) -> None:
    name, bootstrap = kafka_container
    # A slow, loaded machine: the JVM may take a while; list_topics retries until the broker answers.
    metadata = None
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        for _ in range(60):
            try:
                metadata = admin.list_topics(timeout=10)
                break
            except Exception:  # KafkaException while the broker starts
                running = subprocess.run(podman.cmd("container", "exists", name), check=False, timeout=60)
                assert running.returncode == 0, "the Kafka container exited"
    logs = subprocess.run(podman.cmd("logs", name), capture_output=True, text=True, check=False, timeout=60)
    assert metadata is not None, f"no metadata from {bootstrap}:\n{(logs.stdout + logs.stderr)[-4000:]}"
    assert {b.id: f"{b.host}:{b.port}" for b in metadata.brokers.values()} == {1: bootstrap}
    assert metadata.controller_id == 1

    props = subprocess.run(podman.cmd("exec", name, "cat", "/opt/kafka/config/server.properties"),
                           capture_output=True, text=True, check=True, timeout=60).stdout  # fmt: skip
    lines = set(props.splitlines())
    assert {"node.id=1", "log.retention.hours=72", "num.partitions=3", "log.dirs=/var/lib/kafka/data",
            "transaction.state.log.min.isr=1", "controller.listener.names=CONTROLLER",
            "iotpipe.test_key-name=x"} <= lines  # fmt: skip
    assert not any(line.startswith(("heap.opts", "kafka.")) for line in lines), props
    ids = subprocess.run(podman.cmd("exec", name, "id", "-u"), capture_output=True, text=True, check=True, timeout=60)
    assert ids.stdout.strip() == "1000"

