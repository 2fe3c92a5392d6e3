"""CR validation against the REAL kube-apiserver: the CRD schema, CEL rules and Pod Security of the children,
and the operator's InvalidSpec for specs the schema cannot catch."""
from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from op_live_kit import (
    EXAMPLE,
    RESYNC_S,
    Operator,
    apply,
    children,
    condition,
    cr,
    kafka_topics,
    pipeline_doc,
    reconciled,
    wait_for,
)

pytestmark = [pytest.mark.kube, pytest.mark.kafka, pytest.mark.hbase, pytest.mark.slow]


def test_children_pod_templates_pass_pod_security_restricted(api: Any, tmp_path: Path) -> None:
    """Each workload's pod template, as a Pod, is admitted in a namespace that enforces Pod Security "restricted"."""
    from iot_operator.builders import desired_children
    from iot_operator.config import OperatorConfig
    from iot_operator.spec import parse

    ns = f"psa-{uuid.uuid4().hex[:8]}"
    labels = {"pod-security.kubernetes.io/enforce": "restricted",
              "pod-security.kubernetes.io/enforce-version": "latest"}
    api.kubectl("apply", "-f", "-", input_text=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns, "labels": labels}}))
    doc: dict[str, Any] = yaml.safe_load(EXAMPLE.read_text())
    doc["metadata"].update(namespace=ns, uid="00000000-0000-0000-0000-000000000001", generation=1)
    doc["spec"]["bridge"].update(ingress={"enabled": True, "host": "ws.example.com"}, authSecretRef={"name": "tok"})
    p = parse(doc, OperatorConfig())
    workloads = [c for c in desired_children(p, flink_operator=False) if c["kind"] in ("Deployment", "StatefulSet")]
    assert len(workloads) == 5
    pod_specs = {w["metadata"]["name"]: w["spec"]["template"]["spec"] for w in workloads}
    # the FlinkDeployment's pod template, as the Flink operator turns it into JobManager/TaskManager pods
    fd = next(c for c in desired_children(p, flink_operator=True) if c["kind"] == "FlinkDeployment")
    fd_pod = json.loads(json.dumps(fd["spec"]["podTemplate"]["spec"]))
    fd_pod["containers"][0]["image"] = fd["spec"]["image"]
    pod_specs["flinkdeployment-pod-template"] = fd_pod
    for name, spec in pod_specs.items():
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns}, "spec": spec}
        proc = api.kubectl("apply", "--dry-run=server", "-f", "-", input_text=json.dumps(pod), check=False)
        assert proc.returncode == 0 and "violate" not in proc.stderr, (name, proc.stderr)
    privileged = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "priv", "namespace": ns},
                  "spec": {"containers": [{"name": "c", "image": "x", "securityContext": {"privileged": True}}]}}
    proc = api.kubectl("apply", "--dry-run=server", "-f", "-", input_text=json.dumps(privileged), check=False)
    assert proc.returncode != 0 and "restricted" in proc.stderr  # the enforcement is on


INVALID = [
    ({"kafka": {"partitions": 3}}, "set exactly one of kafka.bootstrapServers and kafka.strimziClusterRef"),
    ({"simulators": {"replicas": -1}}, "spec.simulators.replicas: Invalid value: -1: spec.simulators.replicas in body "
                                       "should be greater than or equal to 0"),
    ({"kafka": {"bootstrapServers": "k:9092", "topics": [{"name": "bogus"}]}}, 'Unsupported value: "bogus"'),
    ({"flink": {"parallelism": 4}}, "flink.parallelism must be at most flink.taskManager.replicas * "
                                    "flink.taskManager.taskSlots"),
    ({"bridge": {"ingress": {"enabled": True}}}, "bridge.ingress.host is required when the ingress is enabled"),
    ({"bridge": {"ingress": {"enabled": True, "host": "ws.example.com"}}}, "bridge.authSecretRef is required"),
    ({"kafka": {"bootstrapServers": "k:9092", "topicDeletionPolicy": "Sometimes"}}, 'Unsupported value: "Sometimes"'),
    ({"simulators": {"replicas": 1000, "sitesPerReplica": 1000}}, "must be at most 100000 sites"),
    ({"siteZones": {"-site": "UTC"}}, "siteZones keys must be site ids"),
    ({"siteZones": {"site-1": "Not a zone"}}, "spec.siteZones.site-1: Invalid value"),
    ({"bridge": {"auth": "maybe"}}, 'Unsupported value: "maybe"'),
    ({"flink": {"checkpointing": {"volume": {"accessMode": "ReadOnlyMany"}}}}, 'Unsupported value: "ReadOnlyMany"'),
]


@pytest.mark.parametrize(("spec", "message"), INVALID, ids=[m[:40] for _, m in INVALID])
def test_invalid_crs_are_rejected_by_the_api_server(api: Any, spec: dict[str, Any], message: str,
                                                    tmp_path: Path) -> None:
    doc = {"apiVersion": "iotpipe.dev/v1alpha1", "kind": "IoTPipeline",
           "metadata": {"name": f"bad-{uuid.uuid4().hex[:6]}", "namespace": "default"},
           "spec": {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "h"}}}}
    for key, value in spec.items():
        doc["spec"][key] = value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = api.kubectl("apply", "-f", str(path), check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_immutable_and_shrinking_fields_are_rejected_on_update(api: Any, tmp_path: Path) -> None:
    name = f"upd-{uuid.uuid4().hex[:6]}"
    doc = {"apiVersion": "iotpipe.dev/v1alpha1", "kind": "IoTPipeline",
           "metadata": {"name": name, "namespace": "default"},
           "spec": {"kafka": {"bootstrapServers": "k:9092", "topicPrefix": "a", "partitions": 4,
                              "topics": [{"name": "raw", "partitions": 8}]},
                    "hbase": {"thrift": {"host": "h"}}}}
    apply(api, doc, tmp_path)
    cases = [({"kafka": {"partitions": 2}}, "kafka.partitions cannot be decreased"),
             ({"kafka": {"topics": [{"name": "raw", "partitions": 1}]}}, "a topic's partitions cannot be decreased"),
             ({"kafka": {"topicPrefix": "b"}}, "kafka.topicPrefix is immutable"),
             ({"flink": {"upgradeMode": "stateless"}}, "cannot change from last-state or savepoint to stateless")]
    for patch, message in cases:
        proc = api.kubectl("patch", "-n", "default", f"iotpipeline/{name}", "--type=merge", "-p",
                           json.dumps({"spec": patch}), check=False)
        assert proc.returncode != 0 and message in proc.stderr, (patch, proc.stderr)
    api.kubectl("delete", "-n", "default", f"iotpipeline/{name}")


def test_spec_that_passes_the_schema_but_is_wrong_is_invalidspec_without_hot_loop(
        api: Any, namespace: str, operator: Operator, kafka_service: Any, hbase_service: Any, tmp_path: Path) -> None:
    apply(api, pipeline_doc(namespace, kafka_service, hbase_service, flink__timeZone="Mars/Olympus_Mons"), tmp_path)
    obj = wait_for(lambda: (o := cr(api, namespace)) and condition(o, "Ready").get("reason") == "InvalidSpec" and o,
                   "Ready=False InvalidSpec", log=operator.log)
    ready = condition(obj, "Ready")
    assert ready["status"] == "False" and "Mars/Olympus_Mons" in ready["message"]
    assert obj["status"]["phase"] == "Failed"
    assert kafka_topics(kafka_service.bootstrap, f"{namespace}.factory-a") == {}
    assert children(api, namespace) == {}
    # no hot loop: several timer periods later the object has not been written again
    rv = obj["metadata"]["resourceVersion"]
    wait_for(lambda: operator.metrics().count('result="invalid",trigger="timer"') > 0, "a timer pass")
    time.sleep(RESYNC_S * 2)
    assert cr(api, namespace)["metadata"]["resourceVersion"] == rv
    # fixing the spec recovers
    api.kubectl("patch", "-n", namespace, "iotpipeline/factory-a", "--type=merge", "-p",
                json.dumps({"spec": {"flink": {"timeZone": "Europe/Berlin"}}}))
    wait_for(reconciled(api, namespace), "the reconcile after the fix", log=operator.log)

