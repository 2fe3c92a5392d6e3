"""Deleting an IoTPipeline that has a Delete policy, in a safe order (run by the deletion handler, retried by kopf).

Stop every workload and wait until its pods are gone (no producer can recreate a topic, no sync worker writes into a
dropped table), then drop the topics / tables whose policy is Delete, unless another pipeline names the same prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iot_operator import claims, manifests
from iot_operator.config import OperatorConfig
from iot_operator.deps import Deps, KubeApi
from iot_operator.kube import WORKLOAD_KINDS
from iot_operator.reconcile import Emit, owned, pipelines
from iot_operator.spec import InvalidSpec, PipelineSpec, parse
from iotcommon.errors import ServiceUnavailable


class WorkloadsStopping(ServiceUnavailable):
    """A deletion waits for the pipeline's pods to be gone before it drops topics and tables (retried soon)."""


def stop_workloads(p: PipelineSpec, kube: KubeApi, emit: Emit) -> list[str]:
    """Delete the pipeline's workloads (simulators first, then the job, sync workers, bridge); the pods still there."""
    for api_version, kind in WORKLOAD_KINDS:
        if kind == "FlinkDeployment" and not kube.serves("flink.apache.org/v1beta1", "flinkdeployments"):
            continue
        for obj in kube.list(api_version, kind, p.namespace, f"{manifests.PIPELINE_LABEL}={p.name}"):
            if owned(obj, p.uid) and kube.delete(obj):
                emit("WorkloadStopped", f"deleted {kind} {obj['metadata']['name']} before dropping data")
    pods = kube.list("v1", "Pod", p.namespace, f"{manifests.PIPELINE_LABEL}={p.name}")
    return sorted(str(pod["metadata"]["name"]) for pod in pods)


def cleanup(body: Mapping[str, Any], cfg: OperatorConfig, deps: Deps, emit: Emit) -> list[str]:
    """What was dropped. Raises ServiceUnavailable (WorkloadsStopping while pods remain) to be retried."""
    try:
        p = parse(body, cfg)
    except InvalidSpec:
        return []  # nothing was ever created from an invalid spec
    pods = stop_workloads(p, deps.kube, emit)
    if pods:
        raise WorkloadsStopping(f"waiting for {len(pods)} pod(s) to stop before dropping data: "
                                f"{', '.join(pods[:5])}{' ...' if len(pods) > 5 else ''}")
    kept = claims.kept_by_others(p, pipelines(deps.kube, p.namespace), cfg)
    for what, other in kept.items():
        emit("CleanupSkipped", f"{what} kept: IoTPipeline {other} uses the same prefix", True)
    done: list[str] = []
    if p.kafka.deletion_policy == "Delete" and "topics" not in kept:
        done += [f"deleted topic {n}" for n in deps.kafka(p).delete([t.name for t in p.kafka.topics])]
    if p.hbase.deletion_policy == "Delete" and "tables" not in kept:
        admin = deps.hbase(p)
        try:
            done += [f"deleted table {n}" for n in admin.delete([t.name for t in p.hbase.tables])]
        finally:
            admin.close()
    for what in done:
        emit("Cleanup", what)
    return done
