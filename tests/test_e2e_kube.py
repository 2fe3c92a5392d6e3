"""Issue 13's end-to-end test: the whole pipeline in pods on the real local Kubernetes (iotpipe_stack.cluster).

One module-scoped install, shared by the steps below, which run in file order and build on each other:
both charts installed with the real helm into namespace ``iot`` (Pod Security "restricted" enforced), the images
`make images` builds loaded into the node's containerd, and ``examples/pipeline.yaml`` applied with the changes of
``test_pipeline`` (small CPU requests so everything fits on 2 CPUs, fewer replicas, the default simulator speed).

What each step shows is in its docstring. Progress lines (``[e2e-kube ...]``) go to stderr; the phase times are
printed at the end of the module (and the cluster fixture's own start-up steps in ``kube_cluster.timings``). When a
step (or the install) fails, the namespace's objects, events and every pod's logs are saved under
``tests/artifacts/e2e-kube/<step>/``.
"""

from __future__ import annotations

import base64
import copy
import importlib.util
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from websockets.sync.client import connect

from iotpipe_stack.cluster import Cluster
from iotpipe_stack.images import ensure_images

_spec = importlib.util.spec_from_file_location("kube_e2e_kit", Path(__file__).with_name("kube_e2e_kit.py"))
assert _spec is not None and _spec.loader is not None
kit = importlib.util.module_from_spec(_spec)
sys.modules["kube_e2e_kit"] = kit
_spec.loader.exec_module(kit)

pytestmark = [pytest.mark.kube, pytest.mark.cluster, pytest.mark.helm, pytest.mark.images, pytest.mark.e2e,
              pytest.mark.slow, pytest.mark.timeout(2400)]  # fmt: skip

NS = "iot"
NAME = "factory-a"
SECOND = "factory-b"  # deleted with policies Delete in the last step
PREFIX = "iot_factory_a"  # default table prefix: <namespace>_<name>, '-' -> '_'
TOPIC_PREFIX = "iot.factory-a"  # default topic prefix: <namespace>.<name>
STEADY = ("TH1", "TH2", "HVAC1", "HVAC2", "MiAC1", "MiAC2")  # one reading per 15-minute step each, never withheld
_LIST_TOPICS = (
    "from confluent_kafka.admin import AdminClient;"
    "a = AdminClient({'bootstrap.servers': 'platform-kafka." + NS + ".svc:9092'});"
    "print('\\n'.join(a.list_topics(timeout=60).topics))"
)
IMAGES = ("operator", "simulator", "hbase-sync", "ws-bridge", "stream-job", "hbase", "kafka")
WAIT = 900.0  # generous: 8 developers share 2 cores
ARTIFACTS = kit.REPO / "tests" / "artifacts" / "e2e-kube"


def test_pipeline(name: str = NAME, delete_data: bool = False) -> dict[str, Any]:
    """examples/pipeline.yaml with what this machine needs (everything else as a user gets it)."""
    doc = yaml.safe_load((kit.REPO / "examples" / "pipeline.yaml").read_text())
    doc["metadata"] = {"name": name, "namespace": NS}
    spec = doc["spec"]
    # 2 CPUs for everything: the defaults (1 CPU per Flink process) leave the TaskManager Pending.
    small = {"resources": {"cpu": 0.1}}
    spec["flink"]["jobManager"] = copy.deepcopy(small)
    spec["flink"]["taskManager"] |= {"resources": {"cpu": 0.1}}
    spec["flink"]["checkpointing"]["intervalSeconds"] = 10  # a checkpoint soon after the start (example: 30)
    spec["sync"] |= {"replicas": 1, "resources": {"cpu": "50m"}}  # example: 2
    spec["bridge"]["resources"] = {"cpu": "50m"}
    # 2 sites per pod at the default speed (one 15-minute step per second; the example's 60 is for watching),
    # so late W1 readings (2 simulated days) and day aggregates come within minutes; one pod, scaled to 3 below.
    spec["simulators"] = {"replicas": 1, "sitesPerReplica": 2, "speed": 900, "resources": {"cpu": "50m"}}
    if delete_data:
        spec["kafka"]["topicDeletionPolicy"] = "Delete"
        spec["hbase"]["tableDeletionPolicy"] = "Delete"
    return dict(doc)


test_pipeline.__test__ = False  # type: ignore[attr-defined]  # a builder, not a test


@dataclass
class Deployed:
    cluster: Cluster
    clock: Any
    argv: list[str]  # kubectl with the admin kubeconfig, for port-forwards

    def kubectl(self, *args: str, **kw: Any) -> Any:
        return self.cluster.kubectl(*args, **kw)

    def pipeline(self, name: str = NAME) -> dict[str, Any]:
        return dict(kit.get_json(self.kubectl, "iotpipeline", name, "-n", NS))

    def hbase(self) -> Any:
        return kit.hbase(self.argv, NS, "platform-hbase", 9090)

    def topics(self) -> set[str]:
        # asked from the operator's pod (its image has confluent-kafka); the Kafka image has no CLI tools
        out = self.kubectl("exec", "-n", NS, "deploy/op-iotpipe-operator", "--", "python", "-c", _LIST_TOPICS,
                           timeout=300).stdout  # fmt: skip
        return {t for t in out.split() if t}

    def flink_jm(self) -> dict[str, Any] | None:
        found = [p for p in kit.pods(self.kubectl, NS, f"iotpipe.dev/pipeline={NAME}")
                 if p["metadata"]["name"].startswith(f"{NAME}-flink-jobmanager")
                 and not p["metadata"].get("deletionTimestamp")]  # fmt: skip
        return found[0] if len(found) == 1 and kit.running(found[0]) else None

    def new_jm(self, old: dict[str, Any]) -> dict[str, Any] | None:
        pod = self.flink_jm()
        return pod if pod and pod["metadata"]["uid"] != old["metadata"]["uid"] else None

    def restored_from(self, pod: str) -> str | None:
        log = self.kubectl("logs", "-n", NS, pod, "--tail=-1", check=False, timeout=120).stdout
        for line in log.splitlines():
            if "checkpoints in" in line and ("restoring from" in line or "starting without state" in line):
                return str(line.split("; ", 1)[1])
        return None


@pytest.fixture(scope="module")
def deployed(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory,
             request: pytest.FixtureRequest) -> Iterator[Deployed]:  # fmt: skip
    clock = kit.Clock(kit.uncaptured(request.config))
    for step, seconds in kube_cluster.timings.items():
        clock.phases[f"cluster: {step}"] = round(seconds, 1)
    d = Deployed(kube_cluster, clock, [str(kube_cluster.bins.kube.kubectl), f"--kubeconfig={kube_cluster.kubeconfig}"])
    try:
        _install(d, kube_cluster, tmp_path_factory)
    except BaseException:
        kit.save_artifacts(d.kubectl, NS, ARTIFACTS / "install", clock.say)
        raise
    yield d
    clock.say("phase times (s): " + json.dumps(clock.phases))


@pytest.fixture(autouse=True)
def _artifacts_on_failure(request: pytest.FixtureRequest, deployed: Deployed) -> Iterator[None]:
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        kit.save_artifacts(deployed.kubectl, NS, ARTIFACTS / request.node.name, deployed.clock.say)


def _install(d: Deployed, kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> None:
    clock = d.clock
    with clock.phase("images: build (cached by inputs) and load into the node"):
        ensure_images(IMAGES, containerd_address=kube_cluster.containerd_address)
    helm, home = kit.helm_binary(), tmp_path_factory.mktemp("helm")
    kubeconfig = str(kube_cluster.kubeconfig)
    # The namespace enforces Pod Security "restricted" from the start: every pod below is admitted under it.
    d.kubectl("create", "namespace", NS)
    d.kubectl("label", "namespace", NS, "pod-security.kubernetes.io/enforce=restricted",
              "pod-security.kubernetes.io/enforce-version=latest")  # fmt: skip
    with clock.phase("helm install to Ready (both charts)"):
        kit.helm(helm, kubeconfig, home, "install", "platform", "charts/iotpipe-platform", "-n", NS,
                 "--set", "kafka.image.repository=localhost/iotpipe/kafka", "--set", "kafka.image.tag=0.1.0",
                 "--set", "kafka.image.pullPolicy=Never", "--set", "kafka.persistence.size=1Gi",
                 "--set", "hbase.image.repository=localhost/iotpipe/hbase", "--set", "hbase.image.pullPolicy=Never",
                 "--set", "hbase.persistence.size=1Gi",
                 # no Grafana image can be had here: its objects are installed (and checked), its pod cannot pull
                 "--set", "grafana.image.pullPolicy=Never",
                 "--set", "grafana.sidecar.image.pullPolicy=Never")  # fmt: skip
        kit.helm(helm, kubeconfig, home, "install", "op", "charts/iotpipe-operator", "-n", NS,
                 "--set", "image.repository=localhost/iotpipe/operator", "--set", "image.pullPolicy=Never",
                 # retry soon once HBase answers (it may take minutes to start here; default backoff up to 300 s),
                 # and give Kafka and Thrift calls 30 s (default 10 s: at load 80 they timed out for minutes)
                 "--set", "extraEnv[0].name=IOTPIPE_OPERATOR_MAX_BACKOFF_SECONDS",
                 "--set-string", "extraEnv[0].value=20",
                 "--set", "extraEnv[1].name=IOTPIPE_OPERATOR_DEPENDENCY_TIMEOUT_SECONDS",
                 "--set-string", "extraEnv[1].value=30",
                 *[f"--set=childImages.{key}.repository=localhost/iotpipe/{image}" for key, image in
                   (("streamJob", "stream-job"), ("hbaseSync", "hbase-sync"), ("wsBridge", "ws-bridge"),
                    ("simulator", "simulator"))])  # fmt: skip
        for workload in ("statefulset/platform-kafka", "statefulset/platform-hbase", "deployment/op-iotpipe-operator"):
            d.kubectl("rollout", "status", "-n", NS, workload, f"--timeout={WAIT:.0f}s", timeout=WAIT + 30)
    with clock.phase("pipeline applied to Ready"):
        d.kubectl("apply", "-f", "-", input_text=json.dumps(test_pipeline()))
        kit.wait_for(f"IoTPipeline {NAME} Ready",
                     lambda: kit.condition(d.pipeline(), "Ready").get("status") == "True", WAIT)  # fmt: skip
    # the last step's pipeline (policies Delete) starts now, while the steps before it run: its start-up is not waited
    # for on its own
    d.kubectl("apply", "-f", "-", input_text=json.dumps(test_pipeline(SECOND, delete_data=True)))


def _raw_and_late(conn: Any) -> list[Any]:
    return [*kit.reading_rows(conn, f"{PREFIX}_raw"), *kit.reading_rows(conn, f"{PREFIX}_late")]


def test_readings_reach_hbase_and_the_bridge_serves_live_data(deployed: Deployed) -> None:
    """Ready, then readings in HBase raw (through the platform's Thrift Service) and live raw readings from the bridge's
    Service, with the bearer token of the Secret the operator generated."""
    d = deployed
    status = d.pipeline()["status"]
    assert status["phase"] == "Running", status
    with d.clock.phase("first data in HBase (after Ready)"), d.hbase() as conn:
        rows = kit.wait_for("readings in HBase raw", lambda: kit.reading_rows(conn, f"{PREFIX}_raw") or None, WAIT)
    assert {r.site for r in rows} <= {"site-00001", "site-00002"}
    secret = kit.get_json(d.kubectl, "secret", status["bridge"]["tokenSecret"], "-n", NS)
    token = base64.b64decode(secret["data"]["token"]).decode()
    with kit.port_forward(d.argv, NS, f"svc/{NAME}-bridge", 80) as port:
        with pytest.raises(Exception, match="HTTP 403"):  # no token: the handshake is refused (docs/bridge-protocol.md)
            connect(f"ws://127.0.0.1:{port}/ws", open_timeout=60).close()
        with connect(f"ws://127.0.0.1:{port}/ws", additional_headers={"Authorization": f"Bearer {token}"},
                     open_timeout=60) as ws:  # fmt: skip
            ws.send(json.dumps({"type": "subscribe", "id": "live", "stream": "raw"}))
            frame = kit.wait_for("a live raw reading from the bridge", lambda: _data_frame(ws), WAIT, interval=0)
    assert frame["stream"] == "raw" and frame["phase"] == "live" and frame["records"], frame
    assert frame["records"][0]["data"]["site"] in {"site-00001", "site-00002"}


def _data_frame(ws: Any) -> dict[str, Any] | None:
    msg = json.loads(ws.recv(timeout=30))  # a TimeoutError (an OSError) is one more try of kit.wait_for
    return dict(msg) if msg.get("type") == "data" else None


def test_scale_gives_three_simulator_pods_and_more_sites(deployed: Deployed) -> None:
    """`kubectl scale iotpipeline/factory-a --replicas=3` (the scale subresource): three simulator pods, sites 1-6."""
    d = deployed
    d.kubectl("scale", "-n", NS, f"iotpipeline/{NAME}", "--replicas=3")
    selector = d.pipeline()["status"]["simulators"]["labelSelector"]
    kit.wait_for("three running simulator pods",
                 lambda: sum(kit.running(p) for p in kit.pods(d.kubectl, NS, selector)) == 3, WAIT)  # fmt: skip
    names = sorted(p["metadata"]["name"] for p in kit.pods(d.kubectl, NS, selector))
    assert names == [f"{NAME}-simulator-{i}" for i in range(3)]
    wanted = {f"site-{i:05d}" for i in range(1, 7)}
    with d.hbase() as conn:
        kit.wait_for("sites 1-6 in HBase raw",
                     lambda: {r.site for r in kit.reading_rows(conn, f"{PREFIX}_raw")} == wanted, WAIT)  # fmt: skip


def test_killed_stream_job_pod_loses_and_doubles_no_reading(deployed: Deployed) -> None:
    """`kubectl delete pod --force` of the JobManager (which runs the job) after a checkpoint on the claim: the new pod
    restores from it, and every device's readings in raw (+ late) hold each seq from 0 to the newest exactly once,
    including those sent while the job was down."""
    d = deployed
    jm = kit.wait_for("the JobManager running", d.flink_jm, WAIT)
    kit.wait_for("a completed checkpoint", lambda: _checkpoints(d) or None, WAIT)
    with d.hbase() as conn:
        before = _newest(_raw_and_late(conn))
    assert before, "no steady device's readings in HBase raw before the kill"
    d.kubectl("delete", "pod", "-n", NS, jm["metadata"]["name"], "--force", "--grace-period=0")
    d.clock.say(f"killed {jm['metadata']['name']}")
    new = kit.wait_for("a new JobManager pod running", lambda: d.new_jm(jm), WAIT)
    restored = kit.wait_for("the new job's start line", lambda: d.restored_from(new["metadata"]["name"]), WAIT)
    assert restored.startswith("restoring from file:///flink-data/checkpoints/"), restored
    with d.hbase() as conn:
        kit.wait_for("every device past its newest pre-kill reading",
                     lambda: _past(_newest(_raw_and_late(conn)), before), WAIT)  # fmt: skip
        rows = _raw_and_late(conn)
    assert kit.seq_problems(rows, STEADY) == []
    assert len({(r.site, r.series) for r in rows if r.series in STEADY}) == 6 * len(STEADY)


def _checkpoints(d: Deployed) -> list[Path]:
    """Completed checkpoints in the claim's volume (the cluster's provisioner: <home>/volumes/pvc-<claim uid>)."""
    claim = kit.get_json(d.kubectl, "pvc", f"{NAME}-flink-checkpoints", "-n", NS)
    root = d.cluster.home / "volumes" / f"pvc-{claim['metadata']['uid']}"
    return sorted(root.glob("checkpoints/**/chk-*/_metadata"))


def _newest(rows: list[Any]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.series in STEADY:
            out[(r.site, r.series)] = max(out.get((r.site, r.series), -1), r.seq)
    return out


def _steps(day: dict[str, Any]) -> int:
    """15-minute steps in an aggregate's window: a steady sensor's readings in a whole day."""
    return int((kit.iso_ms(day["window_end"]) - kit.iso_ms(day["window_start"])) // kit.STEP_MS)


def _past(now: dict[tuple[str, str], int], before: dict[tuple[str, str], int]) -> bool:
    return all(now.get(device, -1) > seq for device, seq in before.items())


def test_lateness_change_restarts_the_job_from_its_last_state(deployed: Deployed) -> None:
    """A new `spec.flink.allowedLatenessMinutes`: new Flink pods with the new setting that restore the last checkpoint.
    The day that was open at the change (readings in HBase before it, first emitted after it) counts every one of its
    readings: its state before the change was restored (a job without it would count only the readings after its
    start offsets). And every device's readings are still there exactly once."""
    d = deployed
    jm = kit.wait_for("the JobManager running", d.flink_jm, WAIT)
    with d.hbase() as conn:
        emitted = set(kit.aggregates(conn, f"{PREFIX}_aggregates"))
        rows = _raw_and_late(conn)
    newest = _newest(rows)
    th1 = [r for r in rows if r.series == "TH1"]
    edge = {site: max(r.ts_ms for r in th1 if r.site == site) for site in {r.site for r in th1}}
    first = {site: min(r.ts_ms for r in th1 if r.site == site) for site in edge}
    assert newest and edge, "no steady readings in HBase raw before the change"
    d.kubectl("patch", "iotpipeline", NAME, "-n", NS, "--type=merge",
              "-p", json.dumps({"spec": {"flink": {"allowedLatenessMinutes": 4320}}}))  # fmt: skip
    new = kit.wait_for("a new JobManager pod running", lambda: d.new_jm(jm), WAIT)
    env = {e["name"]: e.get("value") for e in new["spec"]["containers"][0]["env"]}
    assert env["IOTPIPE_LATENESS_S"] == str(4320 * 60)
    restored = kit.wait_for("the new job's start line", lambda: d.restored_from(new["metadata"]["name"]), WAIT)
    assert restored.startswith("restoring from file:///flink-data/checkpoints/"), restored

    seen: list[dict[str, Any]] = []

    def open_days_complete(conn: Any) -> list[dict[str, Any]] | None:
        """The TH1 days open at the change (first emitted after it), once each counts every 15-minute step of its
        window: the first emission may come before the day's last batch (a revision then completes it); only the
        final revision is deterministic."""
        fresh = {k: m for k, m in kit.aggregates(conn, f"{PREFIX}_aggregates").items() if k not in emitted}
        seen[:] = kit.days_spanning(fresh, "AggDay[TH1]", edge, first)
        return list(seen) if seen and all(day["count"] == _steps(day) for day in seen) else None

    with d.hbase() as conn:
        try:
            kit.wait_for("the TH1 days open at the change, each counting all its readings",
                         lambda: open_days_complete(conn), WAIT)  # fmt: skip
        except AssertionError as exc:
            counts = [(day["site"], day["day"], day["count"], _steps(day), day["revision"]) for day in seen]
            raise AssertionError(f"{exc}; (site, day, count, steps, revision): {counts}") from None
        # a planned restart (old pods stopped gracefully) loses and doubles nothing either
        kit.wait_for("every device past its newest reading before the change",
                     lambda: _past(_newest(_raw_and_late(conn)), newest), WAIT)  # fmt: skip
        assert kit.seq_problems(_raw_and_late(conn), STEADY) == []
    ready = kit.wait_for("Ready again", lambda: kit.condition(d.pipeline(), "Ready").get("status") == "True", WAIT)
    assert ready


def test_namespace_enforces_restricted_and_every_pod_runs(deployed: Deployed) -> None:
    """Pod Security "restricted" is enforced in the namespace at runtime: a privileged pod is refused, and every pod
    of the charts and the pipeline was admitted; all run except Grafana's, whose image cannot be had here."""
    d = deployed
    labels = kit.get_json(d.kubectl, "namespace", NS)["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
    refused = d.kubectl("run", "privileged", "-n", NS, "--image=localhost/iotpipe/busybox:1", "--restart=Never",
                        '--overrides={"spec":{"containers":[{"name":"privileged","image":"localhost/iotpipe/busybox:1",'
                        '"securityContext":{"privileged":true}}]}}', check=False)  # fmt: skip
    assert refused.returncode != 0 and "violates PodSecurity" in refused.stderr, refused.stderr
    all_pods = kit.pods(d.kubectl, NS)
    assert any(p["metadata"]["name"].startswith("platform-grafana") for p in all_pods), "Grafana's pod not admitted"

    def others() -> dict[str, bool]:
        return {p["metadata"]["name"]: kit.running(p) for p in kit.pods(d.kubectl, NS)
                if not p["metadata"]["name"].startswith("platform-grafana")}  # fmt: skip

    # factory-b, applied after factory-a was Ready, may still be starting
    kit.wait_for("every pod but Grafana's running", lambda: all(others().values()), WAIT)
    names = set(others())
    assert {"platform-kafka-0", "platform-hbase-0"} <= names
    assert any(n.startswith(f"{NAME}-sync-") for n in names) and any(n.startswith(f"{SECOND}-sync-") for n in names)


CHILD_KINDS = "deployments,statefulsets,services,persistentvolumeclaims,secrets,configmaps,pods"


def _children(d: Deployed, name: str) -> list[str]:
    items = kit.get_json(d.kubectl, CHILD_KINDS, "-n", NS, "-l", f"iotpipe.dev/pipeline={name}")["items"]
    return [f"{i['kind']}/{i['metadata']['name']}" for i in items]


def _tables(conn: Any, prefix: str) -> set[str]:
    return {t.decode() for t in conn.tables() if t.decode().startswith(f"{prefix}_")}


def test_delete_with_retain_garbage_collects_children_and_keeps_data(deployed: Deployed) -> None:
    """Deleting the IoTPipeline (policies Retain): the controller-manager's garbage collector removes every child
    through the owner references; the topics and tables stay."""
    d = deployed
    assert _children(d, NAME)
    d.kubectl("delete", "iotpipeline", NAME, "-n", NS, f"--timeout={WAIT:.0f}s", timeout=WAIT + 30)
    kit.wait_for("the children garbage-collected", lambda: not _children(d, NAME), WAIT)
    assert {f"{TOPIC_PREFIX}.{t}" for t in ("readings", "raw", "aggregates", "late", "deadletter")} <= d.topics()
    with d.hbase() as conn:
        assert _tables(conn, PREFIX) == {f"{PREFIX}_{t}" for t in ("raw", "aggregates", "late", "deadletters")}


def test_delete_with_delete_policy_stops_workloads_before_dropping_data(deployed: Deployed) -> None:
    """A pipeline with topicDeletionPolicy and tableDeletionPolicy Delete: while its object is deleted, no table is
    gone as long as one of its pods still exists; at the end its topics and tables are gone."""
    d = deployed
    name, prefix = SECOND, "iot_factory_b"  # applied by the fixture
    with d.hbase() as conn:
        kit.wait_for("factory-b's tables", lambda: len(_tables(conn, prefix)) == 4, WAIT)
        kit.wait_for("factory-b's simulator and sync pods running",
                     lambda: sum(kit.running(p) for p in kit.pods(d.kubectl, NS, f"iotpipe.dev/pipeline={name}")
                                 if "-simulator-" in p["metadata"]["name"] or "-sync-" in p["metadata"]["name"]) == 2,
                     WAIT)  # fmt: skip
        d.kubectl("delete", "iotpipeline", name, "-n", NS, "--wait=false")
        seen: list[tuple[int, int]] = []
        deadline = time.monotonic() + WAIT
        while d.kubectl("get", "iotpipeline", name, "-n", NS, check=False).returncode == 0:
            assert time.monotonic() < deadline, f"factory-b still there after {WAIT:.0f} s: {seen[-3:]}"
            tables, pods = _tables(conn, prefix), kit.pods(d.kubectl, NS, f"iotpipe.dev/pipeline={name}")
            seen.append((len(tables), len(pods)))
            assert len(tables) == 4 or not pods, f"tables dropped while pods run: {seen}"
        assert _tables(conn, prefix) == set()
    assert not {t for t in d.topics() if t.startswith("iot.factory-b.")}
    d.clock.say(f"deletion observed as (tables, pods): {seen}")
