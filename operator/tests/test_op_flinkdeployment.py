"""The rendered FlinkDeployment against the Flink Kubernetes Operator's validation rules, and Pod Security.

Maven Central serves org.apache.flink:flink-kubernetes-operator only up to 1.7.0 (Flink versions up to v1_19, the
Flink 1.x key names): test_op_flinkdeployment_validator.py runs that release's own DefaultValidator on the rendered
objects (with the version and two key names translated). This file checks the rules of the current operator's
documentation as well, on the objects exactly as rendered, independently of iot_operator.builders.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from iot_operator.builders import desired_children
from iot_operator.config import OperatorConfig
from iot_operator.spec import parse

CFG = OperatorConfig(image_stream_job="reg/job:1")
FLINK_VERSIONS = {"v1_20", "v2_0", "v2_1", "v2_2"}
_MEMORY = re.compile(r"^\d+(\.\d+)?\s*(b|k|kb|m|mb|g|gb|t|tb)?$", re.IGNORECASE)


def validator_errors(fd: dict[str, Any]) -> list[str]:
    """What the Flink operator would refuse in a new FlinkDeployment (its documented validation rules)."""
    spec, errors = fd["spec"], []
    conf: dict[str, str] = spec.get("flinkConfiguration") or {}
    if spec.get("flinkVersion") not in FLINK_VERSIONS:
        errors.append("Flink Version must be defined")
    for key in ("kubernetes.namespace", "kubernetes.cluster-id"):
        if key in conf:
            errors.append(f"Forbidden Flink config key: {key}")
    job = spec.get("job")
    if job:
        if int(job.get("parallelism", 0)) < 1:
            errors.append("Job parallelism must be larger than 0")
        if not job.get("jarURI"):
            errors.append("Jar URI must be defined")
        mode = job.get("upgradeMode", "stateless")
        ha = conf.get("high-availability.type", conf.get("high-availability", "NONE")).lower()
        if mode == "last-state" and ha not in ("kubernetes", "zookeeper"):
            errors.append("Job could not be upgraded with last-state while HA disabled")
        if ha != "none" and not conf.get("high-availability.storageDir"):
            errors.append("high-availability.storageDir must be set when HA is enabled")
        if mode in ("last-state", "savepoint") and not (conf.get("execution.checkpointing.dir")
                                                        or conf.get("state.checkpoints.dir")):
            errors.append("Checkpoint directory[execution.checkpointing.dir] must be defined for last-state and "
                          "savepoint upgrade modes")
        if mode == "savepoint" and not (conf.get("execution.checkpointing.savepoint-dir")
                                        or conf.get("state.savepoints.dir")):
            errors.append("Job could not be upgraded with savepoint while config key[execution.checkpointing."
                          "savepoint-dir] is not set")
        if job.get("state") not in ("running", "suspended"):
            errors.append("job.state must be running or suspended")
    for part in ("jobManager", "taskManager"):
        memory = str((spec.get(part) or {}).get("resource", {}).get("memory", ""))
        if not _MEMORY.match(memory):
            errors.append(f"{part} resource memory parse error: {memory!r}")
    return errors


def flinkdeployment(**flink: Any) -> dict[str, Any]:
    spec = {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}}, "flink": flink}
    p = parse({"metadata": {"name": "p1", "namespace": "ns", "uid": "u"}, "spec": spec}, CFG)
    return next(c for c in desired_children(p, flink_operator=True) if c["kind"] == "FlinkDeployment")


@pytest.mark.parametrize("flink", [
    {},  # the defaults: last-state on the checkpoint volume
    {"upgradeMode": "last-state", "checkpointing": {"storageUri": "s3://bucket/ckpt"}},
    {"upgradeMode": "savepoint"},
    {"upgradeMode": "savepoint", "checkpointing": {"storageUri": "s3://b/c"}, "savepointsUri": "s3://b/s"},
    {"upgradeMode": "stateless"},
], ids=["defaults", "last-state-uri", "savepoint-volume", "savepoint-uri", "stateless"])
def test_the_flink_operator_accepts_the_rendered_flinkdeployment(flink: dict[str, Any]) -> None:
    assert validator_errors(flinkdeployment(**flink)) == []


def test_last_state_gets_checkpoints_and_kubernetes_ha_on_the_checkpoint_volume() -> None:
    fd = flinkdeployment()
    conf = fd["spec"]["flinkConfiguration"]
    assert conf["execution.checkpointing.dir"] == "file:///flink-data/checkpoints"
    assert conf["execution.checkpointing.savepoint-dir"] == "file:///flink-data/savepoints"
    assert conf["high-availability.type"] == "kubernetes"
    assert conf["high-availability.storageDir"] == "file:///flink-data/ha"
    pod = fd["spec"]["podTemplate"]["spec"]
    assert pod["volumes"] == [{"name": "flink-data", "persistentVolumeClaim": {"claimName": "p1-flink-checkpoints"}}]
    main = pod["containers"][0]
    assert main["name"] == "flink-main-container"
    assert main["volumeMounts"] == [{"name": "flink-data", "mountPath": "/flink-data"}]
    env = {e["name"]: e["value"] for e in main["env"]}
    # the Flink operator restores (HA metadata); the job must not choose a checkpoint of its own
    assert (env["IOTPIPE_CHECKPOINT_DIR"], env["IOTPIPE_RESTORE"]) == ("file:///flink-data/checkpoints", "none")


def test_a_storage_uri_replaces_the_volume() -> None:
    fd = flinkdeployment(checkpointing={"storageUri": "s3://bucket/ckpt/"})
    conf = fd["spec"]["flinkConfiguration"]
    assert conf["execution.checkpointing.dir"] == "s3://bucket/ckpt/"
    assert conf["high-availability.storageDir"] == "s3://bucket/ckpt/ha"
    assert "execution.checkpointing.savepoint-dir" not in conf
    assert "volumes" not in fd["spec"]["podTemplate"]["spec"]


def test_the_pod_template_passes_pod_security_restricted() -> None:
    """The rules of the "restricted" profile a FlinkDeployment's pods are checked against (the live version admits
    the pod template at a real API server: test_op_live_validation.py)."""
    pod = flinkdeployment()["spec"]["podTemplate"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["securityContext"]["runAsUser"] != 0
    for c in pod["containers"]:
        assert c["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_the_checkpoint_claim_is_configurable() -> None:
    spec = {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}},
            "flink": {"checkpointing": {"volume": {"size": "5Gi", "storageClassName": "fast",
                                                   "accessMode": "ReadWriteMany"}}}}
    p = parse({"metadata": {"name": "p1", "namespace": "ns", "uid": "u"}, "spec": spec}, CFG)
    pvc = next(c for c in desired_children(p, flink_operator=False) if c["kind"] == "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "p1-flink-checkpoints"
    assert pvc["metadata"]["ownerReferences"][0]["uid"] == "u"
    assert pvc["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}},
                           "storageClassName": "fast"}
