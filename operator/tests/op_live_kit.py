"""Helpers for the live operator tests (real kube-apiserver, Kafka, HBase).

The operator as a subprocess, waits, and independent reads of Kafka, HBase and the API server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from iotpipe_stack.kube_testing import OPERATOR_USER
from iotpipe_stack.ports import free_ports

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "iotpipelines.iotpipe.dev.yaml"
RULES = REPO / "charts" / "iotpipe-operator" / "files" / "operator-rules.yaml"
EXAMPLE = REPO / "examples" / "pipeline.yaml"
IMAGES = {"IOTPIPE_IMAGE_STREAM_JOB": "test.local/stream-job:7", "IOTPIPE_IMAGE_HBASE_SYNC": "test.local/hbase-sync:7",
          "IOTPIPE_IMAGE_WS_BRIDGE": "test.local/ws-bridge:7", "IOTPIPE_IMAGE_SIMULATOR": "test.local/simulator:7"}
RESYNC_S = 2
T = TypeVar("T")


def wait_for(fn: Callable[[], T], what: str, timeout: float = 120, log: Path | None = None) -> T:
    """Poll fn until it returns something truthy (a safety net, not a performance threshold)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.3)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-60:]) if log and log.exists() else ""
    pytest.fail(f"timed out waiting for {what}; last value: {last!r}\noperator log tail:\n{tail}")


class Operator:
    """`kopf run -m iot_operator.handlers` as a subprocess, as the restricted operator user, in one namespace."""

    def __init__(self, api: Any, namespace: str, log: Path, **env: str) -> None:
        self.api, self.namespace, self.log, self.extra_env = api, namespace, log, env
        self.proc: subprocess.Popen[bytes] | None = None
        self.health_port = self.metrics_port = 0

    def start(self) -> Operator:
        self.health_port, self.metrics_port = free_ports(2)
        env = {**os.environ, **IMAGES, "KUBECONFIG": str(self.api.kubeconfig_for(OPERATOR_USER)),
               "IOTPIPE_METRICS_PORT": str(self.metrics_port), "IOTPIPE_METRICS_HOST": "127.0.0.1",
               "IOTPIPE_OPERATOR_RESYNC_SECONDS": str(RESYNC_S), "IOTPIPE_OPERATOR_DEPENDENCY_TIMEOUT_SECONDS": "30",
               "IOTPIPE_OPERATOR_MAX_BACKOFF_SECONDS": "5", **self.extra_env}
        kopf = str(Path(sys.executable).parent / "kopf")
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [kopf, "run", "-m", "iot_operator.handlers", "--standalone", f"--namespace={self.namespace}",
                 f"--liveness=http://127.0.0.1:{self.health_port}/healthz"],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=REPO,
                start_new_session=True)
        wait_for(self.healthy, "the operator's liveness endpoint", 60, self.log)
        return self

    def healthy(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            pytest.fail(f"the operator exited with {self.proc.returncode}:\n{self.log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.proc = None



def established(api: Any, crd: str) -> None:
    def check() -> bool:
        proc = api.kubectl("get", f"crd/{crd}", "-o", "json", check=False)
        conds = (json.loads(proc.stdout).get("status") or {}).get("conditions") if proc.returncode == 0 else None
        return any(c["type"] == "Established" and c["status"] == "True" for c in conds or [])

    wait_for(check, f"CRD {crd} established", 60)




def pipeline_doc(namespace: str, kafka: Any, hbase: Any, **spec_changes: Any) -> dict[str, Any]:
    """examples/pipeline.yaml pointed at the test's Kafka and HBase."""
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"]["kafka"]["bootstrapServers"] = kafka.bootstrap
    doc["spec"]["hbase"]["thrift"] = {"host": hbase.thrift_host, "port": hbase.thrift_port}
    for dotted, value in spec_changes.items():
        node = doc["spec"]
        *parents, leaf = dotted.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return doc


def apply(api: Any, doc: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / f"{doc['metadata']['name']}-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(yaml.safe_dump(doc))
    api.kubectl("apply", "-f", str(path))


def get(api: Any, namespace: str, what: str) -> dict[str, Any] | None:
    proc = api.kubectl("get", "-n", namespace, what, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else None


def cr(api: Any, namespace: str, name: str = "factory-a") -> dict[str, Any]:
    obj = get(api, namespace, f"iotpipeline/{name}")
    assert obj is not None
    return obj


def condition(obj: dict[str, Any], ctype: str) -> dict[str, Any]:
    return next((c for c in obj.get("status", {}).get("conditions", []) if c["type"] == ctype), {})


def reconciled(api: Any, namespace: str, name: str = "factory-a") -> Callable[[], dict[str, Any] | None]:
    """The CR once the operator has reported on its current generation with topics and tables done."""

    def check() -> dict[str, Any] | None:
        obj = cr(api, namespace, name)
        st = obj.get("status", {})
        done = (st.get("observedGeneration") == obj["metadata"]["generation"]
                and condition(obj, "KafkaTopicsReady").get("status") == "True"
                and condition(obj, "HBaseTablesReady").get("status") == "True")
        return obj if done else None

    return check


def kafka_topics(bootstrap: str, prefix: str) -> dict[str, int]:
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        meta = admin.list_topics(timeout=10)
    return {n: len(t.partitions) for n, t in meta.topics.items() if n.startswith(prefix + ".")}


def topic_config(bootstrap: str, topic: str, key: str) -> str:
    res = ConfigResource(ResourceType.TOPIC, topic)
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        return str(admin.describe_configs([res], request_timeout=10)[res].result()[key].value)


def hbase_tables(hbase: Any) -> set[str]:
    conn = hbase.connection()
    try:
        return {t.decode() for t in conn.tables()}
    finally:
        conn.close()


def children(api: Any, namespace: str) -> dict[tuple[str, str], dict[str, Any]]:
    out = get(api, namespace, "deployments,statefulsets,services,configmaps,ingresses")
    assert out is not None
    return {(o["kind"], o["metadata"]["name"]): o for o in out["items"]
            if o["metadata"].get("labels", {}).get("iotpipe.dev/pipeline") == "factory-a"}


def reasons(api: Any, namespace: str) -> list[str]:
    """Reasons of the Events about the pipeline object."""
    events = get(api, namespace, "events")
    assert events is not None
    return [e["reason"] for e in events["items"] if e["involvedObject"]["name"] == "factory-a"]


def env_of(workload: dict[str, Any]) -> dict[str, Any]:
    c = workload["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in c["env"]}


# ------------------------------------------------------------------------------------------------------------------

