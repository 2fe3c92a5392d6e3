"""builders: spec -> manifests (pure). Expected values are written out by hand from the CRD's documented meaning."""

from __future__ import annotations

import json
from typing import Any

from iot_operator.builders import desired_children
from iot_operator.config import OperatorConfig
from iot_operator.manifests import key, label_selector
from iot_operator.spec import PipelineSpec, parse

CFG = OperatorConfig(image_stream_job="reg/job:1", image_hbase_sync="reg/sync:1", image_ws_bridge="reg/bridge:1",
                     image_simulator="reg/sim:1")


def pipeline(**spec: Any) -> PipelineSpec:
    base: dict[str, Any] = {"kafka": {"bootstrapServers": "kafka:9092"},
                            "hbase": {"thrift": {"host": "hb", "port": 9091}}}
    base.update(spec)
    return parse({"metadata": {"name": "p1", "namespace": "ns", "uid": "uid-1", "generation": 1}, "spec": base}, CFG)


def by_key(children: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(k[1], k[2]): c for c in children for k in [key(c)]}


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}


def test_children_without_the_flink_operator() -> None:
    kids = by_key(desired_children(pipeline(), flink_operator=False))
    assert sorted(kids) == sorted([
        ("Service", "p1-flink-jobmanager"), ("Deployment", "p1-flink-jobmanager"),
        ("Deployment", "p1-flink-taskmanager"), ("Deployment", "p1-sync"), ("Service", "p1-bridge"),
        ("Deployment", "p1-bridge"), ("StatefulSet", "p1-simulator"), ("ConfigMap", "p1-grafana-dashboard"),
        ("PersistentVolumeClaim", "p1-flink-checkpoints")])


def test_both_flink_deployments_recreate_their_pods() -> None:
    """A changed spec replaces the JobManager and the TaskManagers whole: no old TaskManager outlives the old
    JobManager and registers with the new one while the restored job commits its transactions."""
    kids = by_key(desired_children(pipeline(), flink_operator=False))
    for name in ("p1-flink-jobmanager", "p1-flink-taskmanager"):
        assert kids[("Deployment", name)]["spec"]["strategy"] == {"type": "Recreate"}, name


def test_children_with_the_flink_operator_use_a_flinkdeployment() -> None:
    kids = by_key(desired_children(pipeline(flink={"parallelism": 2, "taskManager": {"replicas": 2}}),
                                   flink_operator=True))
    fd = kids[("FlinkDeployment", "p1-flink")]
    assert fd["apiVersion"] == "flink.apache.org/v1beta1"
    assert fd["spec"]["image"] == "reg/job:1"
    assert fd["spec"]["job"]["state"] == "running"
    assert fd["spec"]["job"]["upgradeMode"] == "last-state"
    assert fd["spec"]["job"]["parallelism"] == 2
    assert fd["spec"]["job"]["entryClass"] == "org.apache.flink.client.python.PythonDriver"
    assert fd["spec"]["job"]["args"] == ["-pyclientexec", "/opt/venv/bin/python", "-pym", "stream_job"]
    assert fd["spec"]["job"]["jarURI"] == "local:///opt/flink/opt/flink-python-2.2.1.jar"
    assert fd["spec"]["flinkConfiguration"]["python.executable"] == "/opt/venv/bin/python"
    assert fd["spec"]["taskManager"]["replicas"] == 2
    assert fd["spec"]["flinkConfiguration"]["execution.checkpointing.interval"] == "30s"
    assert ("Deployment", "p1-flink-jobmanager") not in kids


def test_every_child_is_owned_by_the_pipeline_and_labelled() -> None:
    for child in desired_children(pipeline(bridge={"ingress": {"enabled": True, "host": "ws.example.com"},
                                                   "authSecretRef": {"name": "tok"}}), flink_operator=True):
        meta = child["metadata"]
        assert meta["namespace"] == "ns"
        assert meta["ownerReferences"] == [{"apiVersion": "iotpipe.dev/v1alpha1", "kind": "IoTPipeline", "name": "p1",
                                            "uid": "uid-1", "controller": True, "blockOwnerDeletion": True}]
        assert meta["labels"]["iotpipe.dev/pipeline"] == "p1"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "iotpipe-operator"


def test_shared_settings_reach_every_workload() -> None:
    shared = {"IOTPIPE_KAFKA_BOOTSTRAP": "kafka:9092", "IOTPIPE_TOPIC_PREFIX": "ns.p1", "IOTPIPE_HBASE_HOST": "hb",
              "IOTPIPE_HBASE_PORT": "9091", "IOTPIPE_TABLE_PREFIX": "ns_p1", "IOTPIPE_SITE_TZ": "Europe/Athens"}
    kids = by_key(desired_children(pipeline(), flink_operator=False))
    for k in [("Deployment", "p1-sync"), ("Deployment", "p1-bridge"), ("StatefulSet", "p1-simulator"),
              ("Deployment", "p1-flink-jobmanager"), ("Deployment", "p1-flink-taskmanager")]:
        env = env_of(kids[k]["spec"]["template"]["spec"]["containers"][0])
        assert {n: env[n] for n in shared} == shared, k


def test_the_operators_log_level_and_format_reach_every_workload() -> None:
    cfg = OperatorConfig(log_level="DEBUG", log_format="json")
    p = parse({"metadata": {"name": "p1", "namespace": "ns", "uid": "uid-1"},
               "spec": {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}}}}, cfg)
    plain = by_key(desired_children(p, flink_operator=False))
    with_fo = by_key(desired_children(p, flink_operator=True))
    containers = [plain[k]["spec"]["template"]["spec"]["containers"][0] for k in [
        ("Deployment", "p1-sync"), ("Deployment", "p1-bridge"), ("StatefulSet", "p1-simulator"),
        ("Deployment", "p1-flink-jobmanager"), ("Deployment", "p1-flink-taskmanager")]]
    containers.append(with_fo[("FlinkDeployment", "p1-flink")]["spec"]["podTemplate"]["spec"]["containers"][0])
    for container in containers:
        env = env_of(container)
        assert (env["IOTPIPE_LOG_LEVEL"], env["IOTPIPE_LOG_FORMAT"]) == ("DEBUG", "json"), container["name"]
    default = env_of(by_key(desired_children(pipeline(), flink_operator=False))[("Deployment", "p1-sync")]
                     ["spec"]["template"]["spec"]["containers"][0])
    assert (default["IOTPIPE_LOG_LEVEL"], default["IOTPIPE_LOG_FORMAT"]) == ("INFO", "text")


def test_images_and_component_settings() -> None:
    kids = by_key(desired_children(pipeline(sync={"replicas": 3, "batchSize": 100, "flushIntervalMs": 50},
                                            simulators={"replicas": 4, "sitesPerReplica": 7, "speed": 60},
                                            hbase={"thrift": {"host": "hb", "port": 9091},
                                                   "tables": [{"name": "raw", "ttlSeconds": 99}]}),
                                   flink_operator=False))
    sync = kids[("Deployment", "p1-sync")]
    assert sync["spec"]["replicas"] == 3
    c = sync["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "reg/sync:1"
    env = env_of(c)
    assert (env["IOTPIPE_SYNC_BATCH_SIZE"], env["IOTPIPE_SYNC_BATCH_MS"]) == ("100", "50")
    assert (env["IOTPIPE_SYNC_TTL_RAW"], env["IOTPIPE_SYNC_TTL_LATE"]) == ("99", "0")
    assert env["IOTPIPE_SYNC_CREATE_TABLES"] == "false"
    assert env["IOTPIPE_SYNC_GROUP"] == "ns.p1.hbase-sync"

    sim = kids[("StatefulSet", "p1-simulator")]
    assert sim["spec"]["replicas"] == 4
    assert sim["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/instance": "p1",
                                                      "app.kubernetes.io/component": "simulator"}
    c = sim["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == "reg/sim:1"
    env = env_of(c)
    assert env["IOTPIPE_SIM_SITES"] == "7"
    assert env["IOTPIPE_SIM_SPEED"] == "60"
    # the pod's StatefulSet ordinal (from its host name) selects its site range: offset = index * sites
    assert (env["IOTPIPE_REPLICA_INDEX"], env["IOTPIPE_SIM_SITE_OFFSET"]) == ("hostname", "-1")
    assert env["IOTPIPE_SIM_CREATE_TOPIC"] == "false"

    bridge = kids[("Deployment", "p1-bridge")]["spec"]["template"]["spec"]["containers"][0]
    assert bridge["image"] == "reg/bridge:1"
    assert env_of(bridge)["IOTPIPE_BRIDGE_HOST"] == "0.0.0.0"
    assert env_of(bridge)["IOTPIPE_BRIDGE_AUTH"] == "on"  # with the generated token (test_op_bridge_auth.py)
    # the sync workers' group: a starting bridge reads again what they have not stored yet
    assert env_of(bridge)["IOTPIPE_SYNC_GROUP"] == "ns.p1.hbase-sync"
    jm = kids[("Deployment", "p1-flink-jobmanager")]["spec"]["template"]["spec"]["containers"][0]
    assert jm["image"] == "reg/job:1"
    assert jm["command"] == ["/docker-entrypoint.sh"]
    assert jm["args"] == ["standalone-job", "--job-classname", "org.apache.flink.client.python.PythonDriver",
                          "-pyclientexec", "/opt/venv/bin/python", "-pym", "stream_job"]
    assert "jobmanager.rpc.address: p1-flink-jobmanager" in env_of(jm)["FLINK_PROPERTIES"]
    assert (env_of(jm)["IOTPIPE_FLINK_PARALLELISM"], env_of(jm)["IOTPIPE_LATENESS_S"],
            env_of(jm)["IOTPIPE_CHECKPOINT_INTERVAL_MS"]) == ("1", "172800", "30000")


def test_bridge_ingress_and_token_secret() -> None:
    kids = by_key(desired_children(pipeline(bridge={
        "ingress": {"enabled": True, "host": "ws.example.com", "className": "nginx", "tlsSecretName": "tls"},
        "authSecretRef": {"name": "bridge-token"}}), flink_operator=False))
    ing = kids[("Ingress", "p1-bridge")]
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["rules"][0]["host"] == "ws.example.com"
    assert ing["spec"]["tls"] == [{"hosts": ["ws.example.com"], "secretName": "tls"}]
    env = env_of(kids[("Deployment", "p1-bridge")]["spec"]["template"]["spec"]["containers"][0])
    assert env["IOTPIPE_BRIDGE_AUTH"] == "on"
    assert env["IOTPIPE_BRIDGE_TOKEN"] == {"secretKeyRef": {"name": "bridge-token", "key": "token"}}


def test_suspend_scales_workloads_to_zero_and_suspends_the_job() -> None:
    kids = by_key(desired_children(pipeline(suspend=True), flink_operator=False))
    for k in [("Deployment", "p1-sync"), ("Deployment", "p1-bridge"), ("StatefulSet", "p1-simulator"),
              ("Deployment", "p1-flink-jobmanager"), ("Deployment", "p1-flink-taskmanager")]:
        assert kids[k]["spec"]["replicas"] == 0, k
    fd = by_key(desired_children(pipeline(suspend=True), flink_operator=True))[("FlinkDeployment", "p1-flink")]
    assert fd["spec"]["job"]["state"] == "suspended"


def test_grafana_dashboard_configmap() -> None:
    kids = by_key(desired_children(pipeline(), flink_operator=False))
    cm = kids[("ConfigMap", "p1-grafana-dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    board = json.loads(cm["data"]["iotpipe-p1.json"])
    assert board["title"] == "iotpipe ns/p1"
    assert all(p["datasource"]["uid"] == "prometheus" for p in board["panels"])
    disabled = by_key(desired_children(pipeline(grafana={"enabled": False}), flink_operator=False))
    assert ("ConfigMap", "p1-grafana-dashboard") not in disabled


def test_scale_label_selector_matches_the_statefulset_selector() -> None:
    p = pipeline()
    sts = by_key(desired_children(p, flink_operator=False))[("StatefulSet", "p1-simulator")]
    selector = dict(part.split("=") for part in label_selector(p, "simulator").split(","))
    assert selector == sts["spec"]["selector"]["matchLabels"]


def test_building_is_deterministic() -> None:
    assert desired_children(pipeline(), True) == desired_children(pipeline(), True)
