"""reconcile() with in-memory FAKES of Kafka, HBase and the Kubernetes API (unit test: no services).

The real-service version of these behaviours is tests/operator/test_operator_kube.py.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from iot_operator import status as st
from iot_operator.cleanup import cleanup
from iot_operator.config import OperatorConfig
from iot_operator.deps import Deps
from iot_operator.reconcile import reconcile
from iot_operator.spec import PipelineSpec, TableSpec
from iot_operator.tables import TableState
from iot_operator.topics import TopicPlan, TopicState
from iotcommon.errors import ServiceUnavailable

CFG = OperatorConfig()


class FakeKafka:
    def __init__(self) -> None:
        self.topics: dict[str, TopicState] = {}
        self.down = False

    def observe(self, names: Sequence[str]) -> dict[str, TopicState]:
        if self.down:
            raise ServiceUnavailable("Kafka at k:9092 is unreachable: fake")
        return {n: self.topics[n] for n in names if n in self.topics}

    def apply(self, p: TopicPlan) -> tuple[list[str], dict[str, str]]:
        done = []
        for t in p.create:
            self.topics[t.name] = TopicState(t.name, t.partitions, t.replication_factor, t.config_dict)
            done.append(f"created topic {t.name}")
        for t, _ in p.grow:
            old = self.topics[t.name]
            self.topics[t.name] = TopicState(t.name, t.partitions, old.replication_factor, old.config)
            done.append(f"grew partitions of topic {t.name}")
        return done, {}

    def delete(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.topics.pop(n, None)]


class FakeHBase:
    def __init__(self) -> None:
        self.tables: dict[str, TableState] = {}

    def observe(self, desired: Sequence[TableSpec]) -> dict[str, TableState]:
        return {t.name: self.tables[t.name] for t in desired if t.name in self.tables}

    def create(self, tables: Sequence[TableSpec]) -> tuple[list[str], dict[str, str]]:
        for t in tables:
            self.tables[t.name] = TableState(t.name, t.ttl_seconds, t.max_versions)
        return [f"created table {t.name}" for t in tables], {}

    def existing(self) -> list[str]:
        return list(self.tables)

    def delete(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.tables.pop(n, None)]

    def close(self) -> None:
        pass


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applies = 0
        self.flink_operator = False

    def serves(self, api_version: str, plural: str) -> bool:
        return self.flink_operator

    def apply(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.applies += 1
        k = (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        created = k not in self.objects
        status = self.objects.get(k, {}).get("status")  # what the object's controller reported stays
        self.objects[k] = {**copy.deepcopy(obj), **({"status": status} if status else {})}
        return self.objects[k], created

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str) -> list[dict[str, Any]]:
        wanted = dict(part.split("=") for part in label_selector.split(",") if part)
        return [o for k, o in self.objects.items() if k[:2] == (api_version, kind)
                and wanted.items() <= (o["metadata"].get("labels") or {}).items()]

    def delete(self, obj: dict[str, Any]) -> bool:
        return self.objects.pop((obj["apiVersion"], obj["kind"], obj["metadata"]["name"]), None) is not None


def world() -> tuple[Deps, FakeKafka, FakeHBase, FakeKube]:
    kafka, hbase, kube = FakeKafka(), FakeHBase(), FakeKube()

    def make_kafka(p: PipelineSpec) -> Any:
        return kafka

    def make_hbase(p: PipelineSpec) -> Any:
        return hbase

    return Deps(kube=kube, kafka=make_kafka, hbase=make_hbase), kafka, hbase, kube  # type: ignore[arg-type]


def body(**spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}}}
    s.update(spec)
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "generation": 1}, "spec": s}


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, reason: str, message: str, warning: bool = False) -> None:
        self.seen.append((reason, message))


def test_first_pass_creates_everything_and_second_pass_changes_nothing() -> None:
    deps, kafka, hbase, kube = world()
    ev = Events()
    out = reconcile(body(), CFG, deps, ev)
    assert sorted(kafka.topics) == ["ns.p.aggregates", "ns.p.deadletter", "ns.p.late", "ns.p.raw", "ns.p.readings"]
    assert sorted(hbase.tables) == ["ns_p_aggregates", "ns_p_deadletters", "ns_p_late", "ns_p_raw"]
    assert len(kube.objects) == 10  # 8 workloads/services/configmaps, the checkpoint claim, the bridge token Secret
    conds = {c.type: c for c in out.conditions}
    assert conds[st.KAFKA].ok and conds[st.HBASE].ok and conds[st.GRAFANA].ok
    assert conds[st.SYNC] == st.Condition(st.SYNC, False, "ReplicasNotReady", "0/1 replicas ready")
    assert [r for r, _ in ev.seen].count("TopicCreated") == 5
    assert [r for r, _ in ev.seen].count("HBaseTableCreated") == 4
    assert [r for r, _ in ev.seen].count("ChildCreated") == 9
    assert [r for r, _ in ev.seen].count("BridgeTokenCreated") == 1

    ev2 = Events()
    b = body()
    b["status"] = st.desired_status(out, 1, None, "T")
    out2 = reconcile(b, CFG, deps, ev2)
    assert ev2.seen == []
    assert st.status_patch(b["status"], st.desired_status(out2, 1, b["status"], "T2")) == {}


def test_a_deleted_child_is_recreated() -> None:
    deps, _, _, kube = world()
    b = body()
    b["status"] = st.desired_status(reconcile(b, CFG, deps, Events()), 1, None, "T")
    del kube.objects[("apps/v1", "Deployment", "p-sync")]
    ev = Events()
    reconcile(b, CFG, deps, ev)
    assert ("apps/v1", "Deployment", "p-sync") in kube.objects
    assert ev.seen == [("ChildRecreated", "recreated Deployment p-sync")]


def test_children_no_longer_wanted_are_deleted() -> None:
    deps, _, _, kube = world()
    reconcile(body(), CFG, deps, Events())
    ev = Events()
    reconcile(body(grafana={"enabled": False}), CFG, deps, ev)
    assert ("v1", "ConfigMap", "p-grafana-dashboard") not in kube.objects
    assert ev.seen == [("ChildDeleted", "deleted ConfigMap p-grafana-dashboard (no longer in the spec)")]


def test_scaling_the_simulators_is_an_event() -> None:
    deps, _, _, kube = world()
    reconcile(body(), CFG, deps, Events())
    ev = Events()
    out = reconcile(body(simulators={"replicas": 3, "sitesPerReplica": 4}), CFG, deps, ev)
    assert kube.objects[("apps/v1", "StatefulSet", "p-simulator")]["spec"]["replicas"] == 3
    assert ev.seen == [("ScaledSimulators", "simulators scaled from 1 to 3 replicas (12 sites)")]
    assert out.details["simulators"]["replicas"] == 3 and out.details["simulators"]["sites"] == 12


def test_unreachable_kafka_still_reconciles_the_rest() -> None:
    deps, kafka, hbase, kube = world()
    kafka.down = True
    out = reconcile(body(), CFG, deps, Events())
    assert out.unavailable == ["kafka: Kafka at k:9092 is unreachable: fake"]
    conds = {c.type: c for c in out.conditions}
    assert (conds[st.KAFKA].ok, conds[st.KAFKA].reason) == (False, "DependencyUnavailable")
    assert conds[st.HBASE].ok and len(hbase.tables) == 4 and len(kube.objects) == 10
    assert st.ready_condition(out).reason == "DependencyUnavailable"


def test_invalid_spec_touches_nothing() -> None:
    deps, kafka, hbase, kube = world()
    out = reconcile(body(flink={"timeZone": "Nowhere/Land"}), CFG, deps, Events())
    assert out.invalid is not None and "timeZone" in out.invalid
    assert not kafka.topics and not hbase.tables and not kube.objects


def test_partitions_grow() -> None:
    deps, kafka, _, _ = world()
    reconcile(body(), CFG, deps, Events())
    ev = Events()
    reconcile(body(kafka={"bootstrapServers": "k:9092", "topics": [{"name": "readings", "partitions": 6}]}), CFG,
              deps, ev)
    assert kafka.topics["ns.p.readings"].partitions == 6
    assert ev.seen == [("PartitionsIncreased", "grew partitions of topic ns.p.readings")]


def test_cleanup_follows_the_deletion_policies() -> None:
    deps, kafka, hbase, _ = world()
    reconcile(body(), CFG, deps, Events())
    assert cleanup(body(), CFG, deps, Events()) == []
    assert len(kafka.topics) == 5 and len(hbase.tables) == 4
    done = cleanup(body(kafka={"bootstrapServers": "k:9092", "topicDeletionPolicy": "Delete"},
                        hbase={"thrift": {"host": "hb"}, "tableDeletionPolicy": "Delete"}), CFG, deps, Events())
    assert len(done) == 9 and not kafka.topics and not hbase.tables


# ---- a failed step is reported, never an aborted pass (issue 13) ------------------------------------------------

def _thrift_ioerror() -> Exception:
    import happybase  # noqa: F401 - loads the Hbase_thrift module of HBase's Thrift1 IDL
    from Hbase_thrift import IOError as HBaseIOError

    return HBaseIOError(message="org.apache.hadoop.hbase.ipc.ServerNotRunningYetException: Server is not running yet")


def test_unexpected_errors_of_each_step_are_reported_and_the_other_steps_still_run() -> None:
    import concurrent.futures

    deps, kafka, hbase, kube = world()

    def kafka_times_out(names: Sequence[str]) -> dict[str, TopicState]:
        raise concurrent.futures.TimeoutError()  # what an admin future's result(timeout=...) raises

    def hbase_starting(desired: Sequence[TableSpec]) -> dict[str, TableState]:
        raise _thrift_ioerror()

    kafka.observe = kafka_times_out  # type: ignore[method-assign]
    hbase.observe = hbase_starting  # type: ignore[method-assign]
    out = reconcile(body(), CFG, deps, Events())  # must not raise
    conds = {c.type: c for c in out.conditions}
    assert (conds[st.KAFKA].ok, conds[st.KAFKA].reason) == (False, "ReconcileError")
    assert conds[st.KAFKA].message.startswith("TimeoutError")
    assert (conds[st.HBASE].ok, conds[st.HBASE].reason) == (False, "ReconcileError")
    assert "ServerNotRunningYetException" in conds[st.HBASE].message
    assert len(kube.objects) == 10  # the children were still reconciled
    assert [e.split(":")[0] for e in out.errors] == ["kafka", "hbase"]
    assert out.retry == out.errors  # the caller retries with backoff

    status = st.desired_status(out, 1, {"conditions": [{"type": "Ready", "status": "True"}]}, "T")
    by_type = {c["type"]: c for c in status["conditions"]}
    assert (by_type["Ready"]["status"], by_type["Ready"]["reason"]) == ("False", "ReconcileError")
    assert (by_type["Degraded"]["status"], by_type["Degraded"]["reason"]) == ("True", "ReconcileError")
    assert status["phase"] == "Degraded"


def test_a_server_error_of_the_kubernetes_api_is_reported_not_raised() -> None:
    deps, _, hbase, kube = world()

    def api_down(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:  # what Kube.apply raises on a 5xx answer
        raise ServiceUnavailable(f"the Kubernetes API failed applying {obj['kind']} {obj['metadata']['name']}: "
                                 f"Service Unavailable")

    kube.apply = api_down  # type: ignore[method-assign]
    out = reconcile(body(), CFG, deps, Events())
    conds = {c.type: c for c in out.conditions}
    assert conds[st.HBASE].ok and len(hbase.tables) == 4
    for ctype in (st.FLINK, st.SYNC, st.BRIDGE, st.SIMULATORS, st.GRAFANA):
        assert (conds[ctype].ok, conds[ctype].reason) == (False, "DependencyUnavailable"), ctype
    assert out.unavailable and out.unavailable[0].startswith("kubernetes: the Kubernetes API failed")
    assert st.degraded_condition(out).reason == "DependencyUnavailable"


def test_a_refused_child_is_reported_for_its_component_and_the_others_are_still_applied() -> None:
    from iot_operator.kube import ApiRefused

    deps, _, _, kube = world()
    apply = kube.apply

    def refuse_sync(obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:  # what Kube.apply raises on a 4xx answer
        if obj["metadata"]["name"] == "p-sync":
            raise ApiRefused(422, "spec.replicas: Invalid value")
        return apply(obj)

    kube.apply = refuse_sync  # type: ignore[method-assign]
    out = reconcile(body(), CFG, deps, Events())
    conds = {c.type: c for c in out.conditions}
    assert conds[st.SYNC] == st.Condition(st.SYNC, False, "ApplyFailed", "applying Deployment p-sync was refused "
                                                                         "(422): spec.replicas: Invalid value")
    assert ("apps/v1", "Deployment", "p-bridge") in kube.objects and not out.unavailable


# ---- the Flink job's state and errors in the status (issue 13) ----------------------------------------------------

def test_the_flinkdeployment_state_and_error_reach_the_status() -> None:
    deps, _, _, kube = world()
    kube.flink_operator = True
    reconcile(body(), CFG, deps, Events())
    fd = kube.objects[("flink.apache.org/v1beta1", "FlinkDeployment", "p-flink")]
    fd["status"] = {"jobStatus": {"state": "FAILED"}, "jobManagerDeploymentStatus": "ERROR",
                    "lifecycleState": "FAILED", "error": "java.lang.RuntimeException: the job's main() failed"}
    out = reconcile(body(), CFG, deps, Events())
    flink = out.details["flink"]
    assert (flink["jobState"], flink["jobManagerDeploymentStatus"], flink["lifecycleState"]) == (
        "FAILED", "ERROR", "FAILED")
    assert flink["error"] == "java.lang.RuntimeException: the job's main() failed"
    cond = next(c for c in out.conditions if c.type == st.FLINK)
    assert (cond.ok, cond.reason) == (False, "JobFailed") and "main() failed" in cond.message


def test_a_crashing_jobmanager_pod_is_the_job_error_in_deployments_mode() -> None:
    deps, _, _, kube = world()
    kube.objects[("v1", "Pod", "p-flink-jobmanager-1")] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p-flink-jobmanager-1", "labels": {"iotpipe.dev/pipeline": "p",
                     "app.kubernetes.io/instance": "p", "app.kubernetes.io/component": "flink-jobmanager"}},
        "status": {"containerStatuses": [{"name": "jobmanager", "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                                          "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}}
    out = reconcile(body(), CFG, deps, Events())
    assert out.details["flink"]["jobState"] == "FAILING"
    assert out.details["flink"]["error"] == ("pod p-flink-jobmanager-1 container jobmanager: CrashLoopBackOff; last "
                                             "exit 1 Error")
    assert out.details["flink"]["checkpoints"] == "file:///flink-data/checkpoints"
    assert next(c for c in out.conditions if c.type == st.FLINK).reason == "PodsFailing"


# ---- bridge auth on by default (issue 13) ------------------------------------------------------------------------

def test_a_bridge_token_secret_is_generated_once_and_kept() -> None:
    import base64

    deps, _, _, kube = world()
    ev = Events()
    out = reconcile(body(), CFG, deps, ev)
    secret = kube.objects[("v1", "Secret", "p-bridge-token")]
    token = base64.b64decode(secret["data"]["token"]).decode()
    assert len(token) >= 32
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "u1"  # garbage-collected with the pipeline
    assert ("BridgeTokenCreated", "created Secret p-bridge-token with a generated bridge token (key token)") in ev.seen
    bridge = kube.objects[("apps/v1", "Deployment", "p-bridge")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in bridge["env"]}
    assert env["IOTPIPE_BRIDGE_AUTH"] == "on"
    assert env["IOTPIPE_BRIDGE_TOKEN"] == {"secretKeyRef": {"name": "p-bridge-token", "key": "token"}}
    assert out.details["bridge"]["tokenSecret"] == "p-bridge-token"

    reconcile(body(), CFG, deps, Events())  # a later pass keeps the token clients already hold
    assert kube.objects[("v1", "Secret", "p-bridge-token")]["data"]["token"] == secret["data"]["token"]

    ev = Events()  # the user's own Secret replaces the generated one
    reconcile(body(bridge={"authSecretRef": {"name": "mine", "key": "k"}}), CFG, deps, ev)
    assert ("v1", "Secret", "p-bridge-token") not in kube.objects
    bridge = kube.objects[("apps/v1", "Deployment", "p-bridge")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in bridge["env"]}
    assert env["IOTPIPE_BRIDGE_TOKEN"] == {"secretKeyRef": {"name": "mine", "key": "k"}}


def test_bridge_auth_is_off_only_when_the_spec_says_so() -> None:
    deps, _, _, kube = world()
    out = reconcile(body(bridge={"auth": "off", "service": {"type": "NodePort"}}), CFG, deps, Events())
    assert ("v1", "Secret", "p-bridge-token") not in kube.objects
    bridge = kube.objects[("apps/v1", "Deployment", "p-bridge")]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in bridge["env"]}
    assert env["IOTPIPE_BRIDGE_AUTH"] == "off" and "IOTPIPE_BRIDGE_TOKEN" not in env
    assert out.details["bridge"]["auth"] == "off"


# ---- deletion in a safe order; prefixes owned by one pipeline (issue 13) ---------------------------------------

def _pipeline_obj(name: str, uid: str, created: str, **spec: Any) -> dict[str, Any]:
    b = body(**spec)
    b["apiVersion"], b["kind"] = "iotpipe.dev/v1alpha1", "IoTPipeline"
    b["metadata"] = {"name": name, "namespace": "ns", "uid": uid, "generation": 1, "creationTimestamp": created}
    return b


DELETE = {"kafka": {"bootstrapServers": "k:9092", "topicPrefix": "shared", "topicDeletionPolicy": "Delete"},
          "hbase": {"thrift": {"host": "hb"}, "tablePrefix": "shared", "tableDeletionPolicy": "Delete"}}


def test_cleanup_stops_the_workloads_and_waits_for_their_pods_before_dropping_data() -> None:
    from iot_operator.cleanup import WorkloadsStopping

    deps, kafka, hbase, kube = world()
    mine = _pipeline_obj("p", "u1", "2026-01-01T00:00:00Z", **DELETE)
    reconcile(mine, CFG, deps, Events())
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p-simulator-0", "namespace": "ns",
                                                            "labels": {"iotpipe.dev/pipeline": "p"}}}
    kube.objects[("v1", "Pod", "p-simulator-0")] = pod
    ev = Events()
    try:
        cleanup(mine, CFG, deps, ev)
        raise AssertionError("cleanup went on while a pod still ran")
    except WorkloadsStopping as exc:
        assert "p-simulator-0" in str(exc)
    workloads = [k for k in kube.objects if k[1] in ("Deployment", "StatefulSet", "FlinkDeployment")]
    assert workloads == []  # every workload is stopped first ...
    assert len(kafka.topics) == 5 and len(hbase.tables) == 4  # ... and the data is still there
    assert sorted(m.split()[1] for r, m in ev.seen if r == "WorkloadStopped") == [
        "Deployment", "Deployment", "Deployment", "Deployment", "StatefulSet"]

    del kube.objects[("v1", "Pod", "p-simulator-0")]  # the pod is gone
    done = cleanup(mine, CFG, deps, Events())
    assert len(done) == 9 and not kafka.topics and not hbase.tables


def test_a_second_pipeline_with_a_used_prefix_gets_conflict_and_never_touches_or_deletes_the_data() -> None:
    deps, kafka, hbase, kube = world()
    first = _pipeline_obj("first", "u-first", "2026-01-01T00:00:00Z", **DELETE)
    second = _pipeline_obj("second", "u-second", "2026-01-02T00:00:00Z", **DELETE)
    kube.objects[("iotpipe.dev/v1alpha1", "IoTPipeline", "first")] = first
    kube.objects[("iotpipe.dev/v1alpha1", "IoTPipeline", "second")] = second
    reconcile(first, CFG, deps, Events())
    applies = kube.applies

    out = reconcile(second, CFG, deps, Events())
    assert out.conflict == ("topic prefix shared and table prefix shared already used by IoTPipeline ns/first: "
                            "choose another kafka.topicPrefix / hbase.tablePrefix")
    assert kube.applies == applies and out.conditions == []  # nothing touched
    assert st.ready_condition(out).reason == "Conflict"
    assert reconcile(first, CFG, deps, Events()).conflict is None  # the older one keeps its prefixes

    ev = Events()
    del kube.objects[("iotpipe.dev/v1alpha1", "IoTPipeline", "second")]  # deleting the second ...
    kube.objects[("iotpipe.dev/v1alpha1", "IoTPipeline", "second-deleting")] = second
    assert cleanup(second, CFG, deps, ev) == []
    assert len(kafka.topics) == 5 and len(hbase.tables) == 4  # ... leaves the first one's data alone
    assert ("CleanupSkipped", "topics kept: IoTPipeline ns/first uses the same prefix") in ev.seen


def test_within_the_same_second_the_pipeline_already_holding_the_prefix_keeps_it() -> None:
    from iot_operator import claims
    from iot_operator.spec import parse

    holder = _pipeline_obj("holder", "u-z", "2026-01-01T00:00:00Z", **DELETE)
    holder["status"] = {"conditions": [{"type": "Conflict", "status": "False"}]}
    newcomer = _pipeline_obj("newcomer", "u-a", "2026-01-01T00:00:00Z", **DELETE)  # same second, smaller uid
    both = [holder, newcomer]
    assert claims.conflict(parse(holder, CFG), holder, both, CFG) is None
    assert "IoTPipeline ns/holder" in str(claims.conflict(parse(newcomer, CFG), newcomer, both, CFG))
