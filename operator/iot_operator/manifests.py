"""The parts every child manifest shares: names, labels, owner reference, env, container and workload skeletons.
Pure: plain dicts in, plain dicts out.

Every child carries an ownerReference to its IoTPipeline (controller, blockOwnerDeletion: what ``kopf.adopt`` sets),
the pipeline's labels, and the shared settings of docs/development.md as env vars.
"""

from __future__ import annotations

from typing import Any

from iot_operator import API_VERSION, FIELD_MANAGER, KIND
from iot_operator.spec import PipelineSpec
from iot_operator.workloads import Resources

Manifest = dict[str, Any]

PIPELINE_LABEL = "iotpipe.dev/pipeline"
COMPONENT_LABEL = "app.kubernetes.io/component"
INSTANCE_LABEL = "app.kubernetes.io/instance"

# Pod Security "restricted": non-root with the runtime's seccomp profile, no privilege escalation, no capabilities
POD_SECURITY: Manifest = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
CONTAINER_SECURITY: Manifest = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def child_name(p: PipelineSpec, component: str) -> str:
    return f"{p.name}-{component}"


def labels(p: PipelineSpec, component: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "iotpipe",
        INSTANCE_LABEL: p.name,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/part-of": "iotpipe",
        "app.kubernetes.io/managed-by": FIELD_MANAGER,
        PIPELINE_LABEL: p.name,
    }


def selector(p: PipelineSpec, component: str) -> dict[str, str]:
    """Selector labels: stable for a pipeline's lifetime (Deployment selectors are immutable)."""
    return {INSTANCE_LABEL: p.name, COMPONENT_LABEL: component}


def label_selector(p: PipelineSpec, component: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(p, component).items())


def owner_reference(p: PipelineSpec) -> Manifest:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": p.name, "uid": p.uid, "controller": True,
            "blockOwnerDeletion": True}


def child_meta(p: PipelineSpec, name: str, component: str, extra_labels: dict[str, str] | None = None) -> Manifest:
    return {"name": name, "namespace": p.namespace, "labels": {**labels(p, component), **(extra_labels or {})},
            "ownerReferences": [owner_reference(p)]}


def env_vars(pairs: dict[str, str]) -> list[Manifest]:
    return [{"name": k, "value": v} for k, v in pairs.items()]


def shared_env(p: PipelineSpec) -> dict[str, str]:
    """The shared settings table of docs/development.md, as every component reads them."""
    return {
        "IOTPIPE_KAFKA_BOOTSTRAP": p.kafka.bootstrap,
        "IOTPIPE_TOPIC_PREFIX": p.kafka.topic_prefix,
        "IOTPIPE_HBASE_HOST": p.hbase.thrift.host,
        "IOTPIPE_HBASE_PORT": str(p.hbase.thrift.port),
        "IOTPIPE_TABLE_PREFIX": p.hbase.table_prefix,
        "IOTPIPE_SITE_TZ": p.flink.time_zone,
        "IOTPIPE_LOG_LEVEL": p.log_level,
        "IOTPIPE_LOG_FORMAT": p.log_format,
    }


def _resources(r: Resources) -> Manifest:
    req = {k: v for k, v in (("cpu", r.cpu), ("memory", r.memory)) if v}
    return {"requests": req} if req else {}


def make_container(name: str, image: str, env: list[Manifest], resources: Resources | None = None,
               **extra: Any) -> Manifest:
    c: Manifest = {"name": name, "image": image, "env": env, "securityContext": CONTAINER_SECURITY}
    if resources is not None and _resources(resources):
        c["resources"] = _resources(resources)
    c.update(extra)
    return c


def make_workload(p: PipelineSpec, kind: str, component: str, replicas: int, containers: list[Manifest],
              pod_annotations: dict[str, str] | None = None, pod_extra: Manifest | None = None,
              **spec_extra: Any) -> Manifest:
    template: Manifest = {
        "metadata": {"labels": labels(p, component)},
        "spec": {"securityContext": POD_SECURITY, "containers": containers, **(pod_extra or {})},
    }
    if pod_annotations:
        template["metadata"]["annotations"] = pod_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": child_meta(p, child_name(p, component), component),
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector(p, component)}, "template": template,
                 **spec_extra},
    }


def key(obj: Manifest) -> tuple[str, str, str]:
    """Identity of a child within its namespace: (apiVersion, kind, name)."""
    return str(obj["apiVersion"]), str(obj["kind"]), str(obj["metadata"]["name"])
