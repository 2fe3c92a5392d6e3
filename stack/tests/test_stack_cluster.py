"""The local cluster works like a real one: Pod Security enforced, Services resolved by CoreDNS and routed by
kube-proxy, Deployments scaled by the controller-manager and scheduler, and `down` leaves nothing behind."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from iotpipe_stack import cluster_net
from iotpipe_stack.cluster import Cluster
from iotpipe_stack.cluster_addons import BUSYBOX_IMAGE, restricted_container_security
from iotpipe_stack.cluster_config import AddressPlan
from iotpipe_stack.settings import REPO_ROOT

pytestmark = [pytest.mark.kube, pytest.mark.cluster]

WAIT = 300.0  # generous: the machine is shared and slow; a wait that runs out fails with what it saw


def wait_for(what: str, probe: Callable[[], bool], explain: Callable[[], str], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if probe():
            return
        time.sleep(1.0)
    pytest.fail(f"{what}: not reached after {timeout:.0f} s\n{explain()}")


def restricted_namespace(cluster: Cluster) -> str:
    ns = f"smoke-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", ns)
    cluster.kubectl("label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted",
                    "pod-security.kubernetes.io/enforce-version=latest")
    return ns


def apply(cluster: Cluster, ns: str, *objs: dict[str, Any], check: bool = True) -> subprocess.CompletedProcess[str]:
    doc = {"apiVersion": "v1", "kind": "List", "items": list(objs)}
    return cluster.kubectl("-n", ns, "apply", "-f", "-", input_text=json.dumps(doc), check=check)


def busybox_pod(name: str, script: str, restricted: bool = True, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": BUSYBOX_IMAGE, "imagePullPolicy": "Never",
                                 "command": ["/bin/sh", "-c", script]}
    if restricted:
        container["securityContext"] = restricted_container_security()
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"restartPolicy": "Never", "containers": [container], **spec}}


def phase(cluster: Cluster, ns: str, pod: str) -> str:
    proc = cluster.kubectl("-n", ns, "get", "pod", pod, "-o", "jsonpath={.status.phase}", check=False)
    return proc.stdout.strip()


def describe(cluster: Cluster, ns: str, *what: str) -> Callable[[], str]:
    def explain() -> str:
        out = cluster.kubectl("-n", ns, "describe", *what, check=False)
        events = cluster.kubectl("-n", ns, "get", "events", "--sort-by=.lastTimestamp", check=False)
        return f"{out.stdout}{out.stderr}\n{events.stdout}"
    return explain


def run_to_completion(cluster: Cluster, ns: str, pod: dict[str, Any]) -> str:
    name = pod["metadata"]["name"]
    apply(cluster, ns, pod)
    wait_for(f"pod {name} finished", lambda: phase(cluster, ns, name) in ("Succeeded", "Failed"),
             describe(cluster, ns, "pod", name))
    logs = cluster.kubectl("-n", ns, "logs", name).stdout
    assert phase(cluster, ns, name) == "Succeeded", logs
    return logs


def test_restricted_namespace_refuses_a_root_pod_and_runs_a_restricted_one(kube_cluster: Cluster) -> None:
    ns = restricted_namespace(kube_cluster)
    refused = apply(kube_cluster, ns, busybox_pod("as-root", "id -u", restricted=False), check=False)
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr
    logs = run_to_completion(kube_cluster, ns, busybox_pod("restricted", "echo hello from a pod; id -u"))
    assert logs.split() == ["hello", "from", "a", "pod", "65534"]


def test_a_service_resolves_through_coredns_from_another_pod(kube_cluster: Cluster) -> None:
    ns = restricted_namespace(kube_cluster)
    web = busybox_pod("web", "echo served-by-web > /www/index.html && exec httpd -f -p 8080 -h /www",
                      volumes=[{"name": "www", "emptyDir": {}}])
    web["spec"]["restartPolicy"] = "Always"
    web["spec"]["containers"][0]["volumeMounts"] = [{"name": "www", "mountPath": "/www"}]
    web["spec"]["containers"][0]["readinessProbe"] = {"tcpSocket": {"port": 8080}, "periodSeconds": 1}
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}
    apply(kube_cluster, ns, web, service)
    kube_cluster.kubectl("-n", ns, "wait", "--for=condition=Ready", "pod/web", f"--timeout={WAIT:.0f}s",
                         timeout=WAIT + 30)
    cluster_ip = kube_cluster.kubectl("-n", ns, "get", "service", "web", "-o",
                                      "jsonpath={.spec.clusterIP}").stdout.strip()
    fqdn = f"web.{ns}.svc.cluster.local"
    # the client retries while kube-proxy and CoreDNS catch up with the new Service (a generous, bounded loop); a
    # failed attempt's error goes to a file, printed only if every attempt fails (in the log it came before the page)
    script = (f"for i in $(seq 120); do nslookup {fqdn} > /tmp/ns 2>&1 && wget -q -O - http://web/ 2> /tmp/wget && "
              f"cat /tmp/ns && exit 0; sleep 1; done; cat /tmp/ns /tmp/wget; exit 1")
    client = busybox_pod("client", script, volumes=[{"name": "tmp", "emptyDir": {}}])
    client["spec"]["containers"][0]["volumeMounts"] = [{"name": "tmp", "mountPath": "/tmp"}]
    logs = run_to_completion(kube_cluster, ns, client)
    assert logs.splitlines()[0] == "served-by-web", logs
    assert f"Address: {cluster_ip}" in logs or f"Address 1: {cluster_ip}" in logs, logs


def test_a_deployment_scales_up_and_down(kube_cluster: Cluster) -> None:
    ns = restricted_namespace(kube_cluster)
    pod = busybox_pod("sleeper", "exec sleep 100000")["spec"]
    pod["restartPolicy"] = "Always"
    pod["terminationGracePeriodSeconds"] = 1
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "sleeper"},
                  "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "sleeper"}},
                           "template": {"metadata": {"labels": {"app": "sleeper"}}, "spec": pod}}}
    apply(kube_cluster, ns, deployment)

    def ready(n: int) -> Callable[[], bool]:
        def probe() -> bool:
            out = kube_cluster.kubectl("-n", ns, "get", "pods", "-l", "app=sleeper", "-o", "json", check=False)
            if out.returncode != 0:
                return False
            items = json.loads(out.stdout)["items"]
            running = [p for p in items if p["status"].get("phase") == "Running"
                       and not p["metadata"].get("deletionTimestamp")]
            return len(items) == n and len(running) == n
        return probe

    wait_for("1 replica running", ready(1), describe(kube_cluster, ns, "deployment", "sleeper"))
    kube_cluster.kubectl("-n", ns, "scale", "deployment/sleeper", "--replicas=3")
    wait_for("3 replicas running", ready(3), describe(kube_cluster, ns, "deployment", "sleeper"))
    kube_cluster.kubectl("-n", ns, "scale", "deployment/sleeper", "--replicas=0")
    wait_for("no pod left", ready(0), describe(kube_cluster, ns, "deployment", "sleeper"))


def test_a_claim_gets_a_volume_that_outlives_its_pod(kube_cluster: Cluster) -> None:
    ns = restricted_namespace(kube_cluster)
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    apply(kube_cluster, ns, claim)  # no storageClassName: the default class "local" provisions it

    def with_volume(name: str, script: str) -> dict[str, Any]:
        pod = busybox_pod(name, script, volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}])
        pod["spec"]["containers"][0]["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
        return pod

    run_to_completion(kube_cluster, ns, with_volume("writer", "echo kept > /data/file"))
    kube_cluster.kubectl("-n", ns, "delete", "pod", "writer")
    assert run_to_completion(kube_cluster, ns, with_volume("reader", "cat /data/file")).strip() == "kept"
    pv = kube_cluster.kubectl("-n", ns, "get", "pvc", "data", "-o", "jsonpath={.spec.volumeName}").stdout.strip()
    directory = kube_cluster.home / "volumes" / pv
    assert (directory / "file").read_text() == "kept\n"
    kube_cluster.kubectl("-n", ns, "delete", "pod", "reader")
    kube_cluster.kubectl("-n", ns, "delete", "pvc", "data")
    wait_for("released volume deleted", lambda: not directory.exists() and kube_cluster.kubectl(
        "get", "pv", pv, check=False).returncode != 0, describe(kube_cluster, ns, "pvc"))


def _host_snapshot(plan: AddressPlan) -> tuple[bool, list[str]]:
    """(host link exists, host iptables lines that mention the slot's addresses)."""
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False).stdout
    prefix = f"10.234.{plan.slot}.", f"10.235.{plan.slot}."
    return cluster_net.link_exists(plan.host_link), [r for r in rules.splitlines() if r and any(p in r for p in prefix)]


def _netns_of(pid: int) -> str:
    return os.readlink(f"/proc/{pid}/ns/net")


@pytest.fixture
def short_home() -> Iterator[Path]:
    """A cluster home short enough for the node's Unix sockets. pytest's tmp_path is not, under xdist: its popen-gwN/
    made containerd's socket path longer than the 104 characters containerd accepts."""
    parent = Path(tempfile.mkdtemp(prefix="iotpipe-c-"))
    yield parent / "c"
    if not cluster_net.mounts_under(parent):  # never delete through a mount the test failed to clean up
        shutil.rmtree(parent, ignore_errors=True)


def test_up_and_down_from_the_command_line_leave_nothing_behind(short_home: Path) -> None:
    home = short_home
    env = {**os.environ, "IOTPIPE_CLUSTER_TIMEOUT": "600"}
    cli = [sys.executable, "-m", "iotpipe_stack.cluster"]
    up = subprocess.run([*cli, "up", "--home", str(home)], capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                        check=False, timeout=1800)
    cluster = Cluster(home)
    plan = None
    node_ns = ""
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        assert f"CONTAINERD_ADDRESS={home}/containerd/containerd.sock" in up.stdout
        plan = cluster.plan()
        assert plan is not None
        assert _host_snapshot(plan)[0]
        node_ns = _netns_of(int((home / "run" / "containerd.pid").read_text().split()[0]))
        assert cluster_net.mounts_under(home)  # the node namespace, pod volumes and rootfs are mounted
        env_out = subprocess.run([*cli, "env", "--home", str(home)], capture_output=True, text=True, check=True)
        assert env_out.stdout.splitlines() == cluster.env_lines()
    finally:
        down = subprocess.run([*cli, "down", "--home", str(home)], capture_output=True, text=True, check=False,
                              timeout=600)
    assert down.returncode == 0, down.stdout + down.stderr
    assert plan is not None
    assert cluster.running() == []
    assert cluster_net.mounts_under(home) == []
    assert _host_snapshot(plan) == (False, [])
    in_node_ns = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if _netns_of(int(d.name)) == node_ns:
                    in_node_ns.append(d.name)
            except OSError:
                continue
    assert in_node_ns == []
    shims = cluster_net.pids_mentioning(str(home))
    assert shims == []
    status = subprocess.run([*cli, "status", "--home", str(home)], capture_output=True, text=True, check=False)
    assert status.returncode == 3 and "not running" in status.stdout
