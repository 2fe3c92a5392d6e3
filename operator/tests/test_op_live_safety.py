"""Deletion in a safe order and one owner per prefix, against the REAL kube-apiserver + etcd, Kafka and HBase.

There is no kubelet: a Pod object labelled as the pipeline's stands for a workload pod that is still stopping.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from op_live_kit import (
    Operator,
    apply,
    children,
    condition,
    cr,
    get,
    hbase_tables,
    kafka_topics,
    pipeline_doc,
    reconciled,
    wait_for,
)

from iotcommon.hbase_layout import TABLES, table_name

pytestmark = [pytest.mark.kube, pytest.mark.kafka, pytest.mark.hbase, pytest.mark.slow]


def test_a_second_pipeline_on_a_used_prefix_conflicts_and_deletion_stops_workloads_before_data(
        api: Any, namespace: str, operator: Operator, kafka_service: Any, hbase_service: Any, tmp_path: Path) -> None:
    prefix = f"shared-{namespace}"
    table_prefix = prefix.replace("-", "_")
    claims = {"kafka__topicPrefix": prefix, "kafka__topicDeletionPolicy": "Delete",
              "hbase__tablePrefix": table_prefix, "hbase__tableDeletionPolicy": "Delete"}
    apply(api, pipeline_doc(namespace, kafka_service, hbase_service, **claims), tmp_path)
    wait_for(reconciled(api, namespace), "the first pipeline reconciled", log=operator.log)
    tables = {table_name(table_prefix, t) for t in TABLES}

    # a second pipeline claiming the same prefixes: Conflict, and it creates nothing
    second = pipeline_doc(namespace, kafka_service, hbase_service, **claims)
    second["metadata"]["name"] = "factory-b"
    apply(api, second, tmp_path)
    obj = wait_for(lambda: (o := cr(api, namespace, "factory-b")) and
                   condition(o, "Conflict").get("status") == "True" and o, "Conflict=True", log=operator.log)
    assert f"topic prefix {prefix} and table prefix {table_prefix} already used by IoTPipeline {namespace}/factory-a" \
        in condition(obj, "Conflict")["message"]
    assert (condition(obj, "Ready")["reason"], obj["status"]["phase"]) == ("Conflict", "Degraded")
    assert get(api, namespace, "deployment/factory-b-sync") is None

    # deleting the second pipeline never drops the first one's data
    api.kubectl("delete", "-n", namespace, "iotpipeline/factory-b", "--timeout=90s")
    assert len(kafka_topics(kafka_service.bootstrap, prefix)) == 5
    assert tables <= hbase_tables(hbase_service)

    # deleting the first: its workloads stop first, and the data stays while a pod of the pipeline remains
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "factory-a-simulator-0", "namespace": namespace,
                        "labels": {"iotpipe.dev/pipeline": "factory-a"}},
           "spec": {"containers": [{"name": "simulator", "image": "test.local/simulator:7"}]}}
    api.kubectl("apply", "-f", "-", input_text=json.dumps(pod))
    api.kubectl("delete", "-n", namespace, "iotpipeline/factory-a", "--wait=false")
    wait_for(lambda: "waiting for 1 pod(s) to stop before dropping data: factory-a-simulator-0"
             in operator.log.read_text(errors="replace"), "the cleanup waiting for the pod", log=operator.log)
    assert not [k for k in children(api, namespace) if k[0] in ("Deployment", "StatefulSet")]
    assert len(kafka_topics(kafka_service.bootstrap, prefix)) == 5
    assert tables <= hbase_tables(hbase_service)
    assert get(api, namespace, "iotpipeline/factory-a") is not None

    api.kubectl("delete", "-n", namespace, "pod/factory-a-simulator-0", "--grace-period=0", "--force")
    wait_for(lambda: get(api, namespace, "iotpipeline/factory-a") is None, "the pipeline gone", log=operator.log)
    assert kafka_topics(kafka_service.bootstrap, prefix) == {}
    assert not tables & hbase_tables(hbase_service)
