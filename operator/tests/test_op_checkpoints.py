"""Deployments mode (no Flink operator): checkpoints on the pipeline's volume, restored on every start."""

from __future__ import annotations

from typing import Any

from iot_operator.builders import desired_children
from iot_operator.config import OperatorConfig
from iot_operator.spec import parse

CFG = OperatorConfig()


def children(**flink: Any) -> dict[tuple[str, str], dict[str, Any]]:
    spec = {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}}, "flink": flink}
    p = parse({"metadata": {"name": "p1", "namespace": "ns", "uid": "u"}, "spec": spec}, CFG)
    return {(c["kind"], c["metadata"]["name"]): c for c in desired_children(p, flink_operator=False)}


def env(pod_spec: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod_spec["containers"][0]["env"] if "value" in e}


def test_jobmanager_and_taskmanagers_share_the_checkpoint_volume_and_the_job_restores_the_latest() -> None:
    kids = children()
    assert ("PersistentVolumeClaim", "p1-flink-checkpoints") in kids
    for name in ("p1-flink-jobmanager", "p1-flink-taskmanager"):
        pod = kids[("Deployment", name)]["spec"]["template"]["spec"]
        assert pod["volumes"] == [{"name": "flink-data",
                                   "persistentVolumeClaim": {"claimName": "p1-flink-checkpoints"}}], name
        assert pod["containers"][0]["volumeMounts"] == [{"name": "flink-data", "mountPath": "/flink-data"}], name
        assert pod["securityContext"]["fsGroup"] == 9999  # the flink user can write the volume
        e = env(pod)
        # a path on the volume: the stream job finds the newest retained checkpoint there on every start
        assert (e["IOTPIPE_CHECKPOINT_DIR"], e["IOTPIPE_RESTORE"]) == ("file:///flink-data/checkpoints", "latest")
        assert "execution.checkpointing.dir: file:///flink-data/checkpoints" in e["FLINK_PROPERTIES"].splitlines()
        assert "high-availability.type: kubernetes" not in e["FLINK_PROPERTIES"]


def test_a_storage_uri_needs_no_volume() -> None:
    kids = children(checkpointing={"storageUri": "file:///mnt/shared/ckpt"})
    assert not any(kind == "PersistentVolumeClaim" for kind, _ in kids)
    pod = kids[("Deployment", "p1-flink-jobmanager")]["spec"]["template"]["spec"]
    assert "volumes" not in pod
    assert env(pod)["IOTPIPE_CHECKPOINT_DIR"] == "file:///mnt/shared/ckpt"
