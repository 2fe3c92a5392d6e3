"""The operator against the REAL kube-apiserver + etcd, Kafka and HBase/Thrift, running as a separate process.

The operator runs as a token user bound to exactly charts/iotpipe-operator/files/operator-rules.yaml (the chart's
RBAC), in its own namespace per test. There is no controller-manager or kubelet: Deployments never get pods (so
*Available conditions stay False) and garbage collection does not run. These tests check what the operator does.
Expected values come from the CR and the documented naming (iotcommon.topics / hbase_layout), read back from Kafka,
HBase and the API server independently of the operator's code.
"""

from __future__ import annotations

import base64
import json
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType
from op_live_kit import (
    IMAGES,
    RESYNC_S,
    Operator,
    apply,
    children,
    condition,
    cr,
    env_of,
    established,
    get,
    hbase_tables,
    kafka_topics,
    pipeline_doc,
    reasons,
    reconciled,
    topic_config,
    wait_for,
)

from iotcommon.hbase_layout import TABLES, table_name
from iotcommon.topics import Topics
from iotpipe_stack.ports import free_ports

pytestmark = [pytest.mark.kube, pytest.mark.kafka, pytest.mark.hbase, pytest.mark.slow]



def test_apply_example_creates_topics_tables_children_and_status(api: Any, namespace: str, operator: Operator,
                                                                 kafka_service: Any, hbase_service: Any,
                                                                 tmp_path: Path) -> None:
    apply(api, pipeline_doc(namespace, kafka_service, hbase_service), tmp_path)
    obj = wait_for(reconciled(api, namespace), "the first reconcile", log=operator.log)
    uid, generation = obj["metadata"]["uid"], obj["metadata"]["generation"]

    # Kafka: the five topics of iotcommon.topics with the default prefix <namespace>.<name>, shaped as the CR says
    names = Topics(f"{namespace}.factory-a")
    assert kafka_topics(kafka_service.bootstrap, names.prefix) == {
        names.readings: 6, names.raw: 3, names.aggregates: 3, names.late: 3, names.deadletter: 3}
    assert topic_config(kafka_service.bootstrap, names.deadletter, "retention.ms") == "2592000000"
    assert topic_config(kafka_service.bootstrap, names.raw, "retention.ms") == "604800000"

    # HBase: the four tables of iotcommon.hbase_layout with the default prefix <namespace>_<name> ('-' -> '_')
    prefix = f"{namespace}_factory_a".replace("-", "_")
    assert {table_name(prefix, t) for t in TABLES} <= hbase_tables(hbase_service)
    conn = hbase_service.connection()
    try:
        assert conn.table(table_name(prefix, "raw")).families()[b"d"]["time_to_live"] == 7776000
    finally:
        conn.close()

    # children: owned by the CR, with the operator's images and the shared settings
    kids = children(api, namespace)
    assert sorted(kids) == sorted([
        ("ConfigMap", "factory-a-grafana-dashboard"), ("Deployment", "factory-a-bridge"),
        ("Deployment", "factory-a-flink-jobmanager"), ("Deployment", "factory-a-flink-taskmanager"),
        ("Deployment", "factory-a-sync"), ("Service", "factory-a-bridge"), ("Service", "factory-a-flink-jobmanager"),
        ("StatefulSet", "factory-a-simulator")])
    for kid in kids.values():
        refs = kid["metadata"]["ownerReferences"]
        assert [(r["kind"], r["name"], r["uid"], r["controller"]) for r in refs] == [
            ("IoTPipeline", "factory-a", uid, True)]
    images = {k[1]: w["spec"]["template"]["spec"]["containers"][0]["image"] for k, w in kids.items()
              if k[0] in ("Deployment", "StatefulSet")}
    assert images == {"factory-a-sync": IMAGES["IOTPIPE_IMAGE_HBASE_SYNC"],
                      "factory-a-bridge": IMAGES["IOTPIPE_IMAGE_WS_BRIDGE"],
                      "factory-a-simulator": IMAGES["IOTPIPE_IMAGE_SIMULATOR"],
                      "factory-a-flink-jobmanager": IMAGES["IOTPIPE_IMAGE_STREAM_JOB"],
                      "factory-a-flink-taskmanager": IMAGES["IOTPIPE_IMAGE_STREAM_JOB"]}
    for name in ("factory-a-sync", "factory-a-bridge", "factory-a-flink-jobmanager"):
        env = env_of(kids[("Deployment", name)])
        assert env["IOTPIPE_KAFKA_BOOTSTRAP"] == kafka_service.bootstrap
        assert env["IOTPIPE_TOPIC_PREFIX"] == names.prefix
        assert (env["IOTPIPE_HBASE_HOST"], env["IOTPIPE_HBASE_PORT"]) == (hbase_service.thrift_host,
                                                                          str(hbase_service.thrift_port))
        assert env["IOTPIPE_TABLE_PREFIX"] == prefix
        assert env["IOTPIPE_SITE_TZ"] == "Europe/Athens"
    assert kids[("Deployment", "factory-a-sync")]["spec"]["replicas"] == 2
    assert kids[("StatefulSet", "factory-a-simulator")]["spec"]["replicas"] == 2
    for name in ("factory-a-bridge", "factory-a-flink-jobmanager", "factory-a-flink-taskmanager"):
        assert env_of(kids[("Deployment", name)])["IOTPIPE_SITE_ZONES"] == "site-00006=America/New_York"
    assert env_of(kids[("StatefulSet", "factory-a-simulator")])["IOTPIPE_SITE_ZONES"] == "site-00006=America/New_York"

    # checkpoints on the pipeline's claim, mounted by the JobManager and the TaskManager
    pvc = get(api, namespace, "persistentvolumeclaim/factory-a-flink-checkpoints")
    assert pvc is not None and pvc["metadata"]["ownerReferences"][0]["uid"] == uid
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"] and pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    for name in ("factory-a-flink-jobmanager", "factory-a-flink-taskmanager"):
        pod = kids[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "factory-a-flink-checkpoints"

    # bridge auth on by default: a generated token Secret owned by the pipeline, never auth off
    secret = get(api, namespace, "secret/factory-a-bridge-token")
    assert secret is not None and secret["metadata"]["ownerReferences"][0]["uid"] == uid
    assert len(base64.b64decode(secret["data"]["token"])) >= 32
    bridge_env = env_of(kids[("Deployment", "factory-a-bridge")])
    assert bridge_env["IOTPIPE_BRIDGE_AUTH"] == "on"
    assert bridge_env["IOTPIPE_BRIDGE_TOKEN"] == {"secretKeyRef": {"name": "factory-a-bridge-token", "key": "token"}}

    # status: every condition carries observedGeneration; without a kubelet no replica becomes ready
    status = obj["status"]
    assert status["observedGeneration"] == generation
    types = {c["type"]: c for c in status["conditions"]}
    assert set(types) == {"Ready", "Degraded", "Conflict", "KafkaTopicsReady", "HBaseTablesReady", "FlinkJobReady",
                          "SyncWorkersAvailable", "BridgeAvailable", "SimulatorsAvailable", "GrafanaDashboardReady"}
    assert (types["Degraded"]["status"], types["Conflict"]["status"]) == ("False", "False")
    assert all(c["observedGeneration"] == generation for c in types.values())
    assert (types["SyncWorkersAvailable"]["status"], types["SyncWorkersAvailable"]["reason"],
            types["SyncWorkersAvailable"]["message"]) == ("False", "ReplicasNotReady", "0/2 replicas ready")
    assert (types["Ready"]["status"], types["Ready"]["reason"]) == ("False", "ComponentsNotReady")
    assert status["phase"] == "Provisioning"
    assert status["simulators"] == {"replicas": 2, "readyReplicas": 0, "sites": 10,
                                    "labelSelector": "app.kubernetes.io/instance=factory-a,"
                                                     "app.kubernetes.io/component=simulator"}
    assert [t["topicName"] for t in status["topics"] if t["ready"]] == list(names.all())

    # events, printer columns, metrics
    # (a table whose creation outlasted the Thrift timeout is reported unavailable, then found: no event for it)
    wait_for(lambda: reasons(api, namespace).count("TopicCreated") == 5, "the events", log=operator.log)
    assert "HBaseTableCreated" in reasons(api, namespace)
    table = api.kubectl("get", "-n", namespace, "iotpipeline/factory-a").stdout.split("\n")
    assert table[0].split() == ["NAME", "READY", "PHASE", "SIMULATORS", "AGE"]
    assert table[1].split()[:4] == ["factory-a", "False", "Provisioning", "2"]
    assert f'iotpipeline_reconcile_total{{pipeline="{namespace}/factory-a",result="ok",trigger="create"}}' \
        in operator.metrics()

    # no status write when nothing changed: timer passes leave the object alone
    rv = cr(api, namespace)["metadata"]["resourceVersion"]
    wait_for(lambda: 'trigger="timer"' in operator.metrics(), "a timer reconcile", log=operator.log)
    time.sleep(RESYNC_S * 2)
    assert cr(api, namespace)["metadata"]["resourceVersion"] == rv


def test_scale_partitions_and_deleted_child(api: Any, namespace: str, operator: Operator, kafka_service: Any,
                                            hbase_service: Any, tmp_path: Path) -> None:
    apply(api, pipeline_doc(namespace, kafka_service, hbase_service), tmp_path)
    wait_for(reconciled(api, namespace), "the first reconcile", log=operator.log)

    # kubectl scale goes through the scale subresource to spec.simulators.replicas
    api.kubectl("scale", "-n", namespace, "iotpipeline/factory-a", "--replicas=5")
    sts = wait_for(lambda: (s := get(api, namespace, "statefulset/factory-a-simulator")) and
                   s["spec"]["replicas"] == 5 and s, "the simulators StatefulSet at 5 replicas", log=operator.log)
    assert env_of(sts)["IOTPIPE_SIM_SITES"] == "5"
    scale = json.loads(api.kubectl("get", "--raw", f"/apis/iotpipe.dev/v1alpha1/namespaces/{namespace}/iotpipelines/"
                                   "factory-a/scale").stdout)
    assert scale["spec"]["replicas"] == 5
    wait_for(lambda: cr(api, namespace)["status"]["simulators"]["replicas"] == 5, "status.simulators.replicas")
    assert cr(api, namespace)["status"]["simulators"]["sites"] == 25

    # more partitions in the spec -> the topics grow
    api.kubectl("patch", "-n", namespace, "iotpipeline/factory-a", "--type=merge", "-p",
                json.dumps({"spec": {"kafka": {"partitions": 4}}}))
    names = Topics(f"{namespace}.factory-a")
    wait_for(lambda: kafka_topics(kafka_service.bootstrap, names.prefix).get(names.raw) == 4, "raw at 4 partitions",
             log=operator.log)
    assert kafka_topics(kafka_service.bootstrap, names.prefix) == {
        names.readings: 6, names.raw: 4, names.aggregates: 4, names.late: 4, names.deadletter: 4}

    # a deleted child Deployment is recreated (by the drift timer: nothing else watches it)
    old = get(api, namespace, "deployment/factory-a-sync")
    assert old is not None
    api.kubectl("delete", "-n", namespace, "deployment/factory-a-sync")
    new = wait_for(lambda: (d := get(api, namespace, "deployment/factory-a-sync")) and
                   d["metadata"]["uid"] != old["metadata"]["uid"] and d, "the sync Deployment back", log=operator.log)
    assert new["metadata"]["ownerReferences"][0]["uid"] == cr(api, namespace)["metadata"]["uid"]
    wait_for(lambda: "ChildRecreated" in reasons(api, namespace), "the ChildRecreated event", log=operator.log)


def test_unreachable_kafka_is_reported_and_the_rest_reconciled(api: Any, namespace: str, hbase_service: Any,
                                                               tmp_path: Path) -> None:
    operator = Operator(api, namespace, tmp_path / "operator.log",
                        IOTPIPE_OPERATOR_DEPENDENCY_TIMEOUT_SECONDS="3").start()
    try:
        _unreachable_kafka(api, namespace, operator, hbase_service, tmp_path)
    finally:
        operator.stop()


def _unreachable_kafka(api: Any, namespace: str, operator: Operator, hbase_service: Any, tmp_path: Path) -> None:
    closed = free_ports(1)[0]  # nothing listens there
    doc = pipeline_doc(namespace, type("K", (), {"bootstrap": f"127.0.0.1:{closed}"})(), hbase_service)
    apply(api, doc, tmp_path)
    obj = wait_for(lambda: (o := cr(api, namespace)) and condition(o, "KafkaTopicsReady").get("reason")
                   == "DependencyUnavailable" and condition(o, "HBaseTablesReady").get("status") == "True" and o,
                   "KafkaTopicsReady=False DependencyUnavailable", log=operator.log)
    assert condition(obj, "Ready")["reason"] == "DependencyUnavailable"
    assert obj["status"]["phase"] == "Degraded"
    assert ("Deployment", "factory-a-sync") in children(api, namespace)


def test_topic_config_drift_is_set_back(api: Any, namespace: str, operator: Operator, kafka_service: Any,
                                        hbase_service: Any, tmp_path: Path) -> None:
    apply(api, pipeline_doc(namespace, kafka_service, hbase_service), tmp_path)
    wait_for(reconciled(api, namespace), "the first reconcile", log=operator.log)
    raw = Topics(f"{namespace}.factory-a").raw
    # someone changes the topic behind the operator's back
    res = ConfigResource(ResourceType.TOPIC, raw, incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    with AdminClient({"bootstrap.servers": kafka_service.bootstrap}) as admin:
        admin.incremental_alter_configs([res], request_timeout=10)[res].result()
    assert topic_config(kafka_service.bootstrap, raw, "retention.ms") == "1000"
    wait_for(lambda: topic_config(kafka_service.bootstrap, raw, "retention.ms") == "604800000",
             "retention.ms set back by the periodic pass", log=operator.log)
    wait_for(lambda: "TopicConfigDrift" in reasons(api, namespace), "the TopicConfigDrift event", log=operator.log)


def test_missing_hbase_namespace_is_reported(api: Any, namespace: str, operator: Operator, kafka_service: Any,
                                            hbase_service: Any, tmp_path: Path) -> None:
    missing = f"nons_{uuid.uuid4().hex[:6]}"  # Thrift1 cannot create namespaces: the operator says so
    apply(api, pipeline_doc(namespace, kafka_service, hbase_service, hbase__namespace=missing), tmp_path)
    obj = wait_for(lambda: (o := cr(api, namespace)) and condition(o, "HBaseTablesReady").get("status") == "False"
                   and o, "HBaseTablesReady=False", log=operator.log)
    hb = condition(obj, "HBaseTablesReady")
    assert hb["reason"] == "NamespaceNotFound", hb
    assert missing in hb["message"]
    assert condition(obj, "KafkaTopicsReady")["status"] == "True"


def test_delete_with_default_policy_keeps_topics_and_tables(api: Any, namespace: str, operator: Operator,
                                                            kafka_service: Any, hbase_service: Any,
                                                            tmp_path: Path) -> None:
    apply(api, pipeline_doc(namespace, kafka_service, hbase_service), tmp_path)
    obj = wait_for(reconciled(api, namespace), "the first reconcile", log=operator.log)
    assert "iotpipe.dev/cleanup" not in (obj["metadata"].get("finalizers") or [])
    api.kubectl("delete", "-n", namespace, "iotpipeline/factory-a", "--timeout=60s")
    assert get(api, namespace, "iotpipeline/factory-a") is None
    prefix = f"{namespace}_factory_a".replace("-", "_")
    assert len(kafka_topics(kafka_service.bootstrap, f"{namespace}.factory-a")) == 5
    assert {table_name(prefix, t) for t in TABLES} <= hbase_tables(hbase_service)


def test_delete_with_delete_policy_removes_topics_and_tables(api: Any, namespace: str, operator: Operator,
                                                             kafka_service: Any, hbase_service: Any,
                                                             tmp_path: Path) -> None:
    doc = pipeline_doc(namespace, kafka_service, hbase_service, kafka__topicDeletionPolicy="Delete",
                       hbase__tableDeletionPolicy="Delete")
    apply(api, doc, tmp_path)
    wait_for(reconciled(api, namespace), "the first reconcile", log=operator.log)
    wait_for(lambda: "iotpipe.dev/cleanup" in (cr(api, namespace)["metadata"].get("finalizers") or []),
             "the cleanup finalizer", log=operator.log)
    api.kubectl("delete", "-n", namespace, "iotpipeline/factory-a", "--timeout=90s")
    assert get(api, namespace, "iotpipeline/factory-a") is None
    prefix = f"{namespace}_factory_a".replace("-", "_")
    wait_for(lambda: kafka_topics(kafka_service.bootstrap, f"{namespace}.factory-a") == {}, "topics deleted")
    assert not {table_name(prefix, t) for t in TABLES} & hbase_tables(hbase_service)


def test_operator_restart_midway_converges_without_duplicates(api: Any, namespace: str, kafka_service: Any,
                                                              hbase_service: Any, tmp_path: Path) -> None:
    first = Operator(api, namespace, tmp_path / "first.log").start()
    names = Topics(f"{namespace}.factory-a")
    try:
        apply(api, pipeline_doc(namespace, kafka_service, hbase_service), tmp_path)
        # killed hard as soon as it has started creating things: mid-way through its first reconcile
        wait_for(lambda: kafka_topics(kafka_service.bootstrap, names.prefix), "the first topic", log=first.log)
        first.stop(signal.SIGKILL)
        # the spec changes while no operator runs
        api.kubectl("scale", "-n", namespace, "iotpipeline/factory-a", "--replicas=3")
    finally:
        first.stop(signal.SIGKILL)
    second = Operator(api, namespace, tmp_path / "second.log").start()
    try:
        obj = wait_for(lambda: (o := reconciled(api, namespace)()) and
                       o["status"]["simulators"]["replicas"] == 3 and o, "convergence after the restart",
                       log=second.log)
        kids = children(api, namespace)
        assert len(kids) == 8
        assert all(len(k["metadata"]["ownerReferences"]) == 1 for k in kids.values())
        assert kids[("StatefulSet", "factory-a-simulator")]["spec"]["replicas"] == 3
        assert kafka_topics(kafka_service.bootstrap, names.prefix) == {
            names.readings: 6, names.raw: 3, names.aggregates: 3, names.late: 3, names.deadletter: 3}
        assert [c["type"] for c in obj["status"]["conditions"]].count("Ready") == 1
        # a further pass changes nothing (server-side apply of identical manifests is a no-op)
        versions = {k: v["metadata"]["resourceVersion"] for k, v in kids.items()}
        wait_for(lambda: 'trigger="timer"' in second.metrics(), "a timer pass", log=second.log)
        time.sleep(RESYNC_S)
        assert {k: v["metadata"]["resourceVersion"] for k, v in children(api, namespace).items()} == versions
    finally:
        second.stop()


def test_flinkdeployment_is_used_when_the_flink_operator_crd_exists(api: Any, namespace: str, kafka_service: Any,
                                                                   hbase_service: Any, tmp_path: Path) -> None:
    """A stand-in for the Flink Kubernetes Operator's CRD (same group/version/kind, schema left open)."""
    crd = {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "metadata": {"name": "flinkdeployments.flink.apache.org"},
           "spec": {"group": "flink.apache.org", "scope": "Namespaced",
                    "names": {"kind": "FlinkDeployment", "plural": "flinkdeployments", "singular": "flinkdeployment"},
                    "versions": [{"name": "v1beta1", "served": True, "storage": True, "subresources": {"status": {}},
                                  "schema": {"openAPIV3Schema": {"type": "object",
                                                                 "x-kubernetes-preserve-unknown-fields": True}}}]}}
    api.kubectl("apply", "-f", "-", input_text=json.dumps(crd))
    try:
        established(api, "flinkdeployments.flink.apache.org")
        op = Operator(api, namespace, tmp_path / "operator.log").start()
        try:
            apply(api, pipeline_doc(namespace, kafka_service, hbase_service), tmp_path)
            fd = wait_for(lambda: get(api, namespace, "flinkdeployment/factory-a-flink"), "the FlinkDeployment",
                          log=op.log)
            assert fd["spec"]["image"] == IMAGES["IOTPIPE_IMAGE_STREAM_JOB"]
            assert fd["spec"]["job"]["state"] == "running" and fd["spec"]["job"]["parallelism"] == 2
            assert fd["metadata"]["ownerReferences"][0]["name"] == "factory-a"
            conf = fd["spec"]["flinkConfiguration"]
            assert conf["high-availability.type"] == "kubernetes"
            assert conf["execution.checkpointing.dir"] == "file:///flink-data/checkpoints"
            assert fd["spec"]["podTemplate"]["spec"]["securityContext"]["runAsNonRoot"] is True
            obj = wait_for(reconciled(api, namespace), "the reconcile", log=op.log)
            assert obj["status"]["flink"]["mode"] == "FlinkDeployment"
            # the Flink operator reports a failure -> the job's state and error in the IoTPipeline's status
            api.kubectl("patch", "-n", namespace, "flinkdeployment/factory-a-flink", "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": {
                            "jobStatus": {"state": "FAILED"}, "lifecycleState": "FAILED",
                            "error": "org.apache.flink.runtime.JobException: Recovery is suppressed"}}))
            obj = wait_for(lambda: (o := cr(api, namespace)) and o["status"]["flink"].get("error") and o,
                           "status.flink.error", log=op.log)
            assert obj["status"]["flink"]["jobState"] == "FAILED"
            assert condition(obj, "FlinkJobReady")["reason"] == "JobFailed"
            assert (condition(obj, "Degraded")["status"], condition(obj, "Degraded")["reason"]) == ("True",
                                                                                                  "JobFailed")
            assert ("Deployment", "factory-a-flink-jobmanager") not in children(api, namespace)
            # the Flink operator reports the job RUNNING -> FlinkJobReady
            api.kubectl("patch", "-n", namespace, "flinkdeployment/factory-a-flink", "--subresource=status",
                        "--type=merge", "-p", json.dumps({"status": {"jobStatus": {"state": "RUNNING"},
                                                                     "lifecycleState": "STABLE", "error": None}}))
            obj = wait_for(lambda: (o := cr(api, namespace)) and
                           condition(o, "FlinkJobReady").get("status") == "True" and o, "FlinkJobReady=True",
                           log=op.log)
            # the status write removed the error (a merge patch keeps keys it does not mention: it wrote null)
            assert "error" not in obj["status"]["flink"], obj["status"]["flink"]
            assert condition(obj, "Degraded")["status"] == "False"
            # suspend: the job is suspended, workloads scale to zero
            api.kubectl("patch", "-n", namespace, "iotpipeline/factory-a", "--type=merge", "-p",
                        json.dumps({"spec": {"suspend": True}}))
            wait_for(lambda: (f := get(api, namespace, "flinkdeployment/factory-a-flink")) and
                     f["spec"]["job"]["state"] == "suspended", "the suspended job", log=op.log)
            wait_for(lambda: cr(api, namespace).get("status", {}).get("phase") == "Suspended", "phase Suspended")
            assert get(api, namespace, "deployment/factory-a-sync")["spec"]["replicas"] == 0  # type: ignore[index]
        finally:
            op.stop()
    finally:
        api.kubectl("delete", "crd/flinkdeployments.flink.apache.org", "--wait=false", check=False)
