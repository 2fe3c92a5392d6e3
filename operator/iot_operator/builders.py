"""spec -> Kubernetes manifests. Pure: plain dicts in, plain dicts out, no API calls.

Every child carries an ownerReference to its IoTPipeline (controller, blockOwnerDeletion: what ``kopf.adopt`` sets),
the pipeline's labels, and the shared settings of docs/development.md as env vars.
"""

from __future__ import annotations

import json
from typing import Any

from iot_operator import API_VERSION, FIELD_MANAGER, KIND
from iot_operator.dashboard import dashboard
from iot_operator.spec import PipelineSpec, Resources

Manifest = dict[str, Any]

PIPELINE_LABEL = "iotpipe.dev/pipeline"
COMPONENT_LABEL = "app.kubernetes.io/component"
INSTANCE_LABEL = "app.kubernetes.io/instance"
FLINK_DEPLOYMENT_API = "flink.apache.org/v1beta1"
SYNC_HTTP_PORT = 9464
FLINK_ENTRYPOINT = "/docker-entrypoint.sh"  # of the official Flink images the stream-job image builds on

_POD_SECURITY: Manifest = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY: Manifest = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


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


def _meta(p: PipelineSpec, name: str, component: str, extra_labels: dict[str, str] | None = None) -> Manifest:
    return {"name": name, "namespace": p.namespace, "labels": {**labels(p, component), **(extra_labels or {})},
            "ownerReferences": [owner_reference(p)]}


def _env(pairs: dict[str, str]) -> list[Manifest]:
    return [{"name": k, "value": v} for k, v in pairs.items()]


def shared_env(p: PipelineSpec) -> dict[str, str]:
    """The shared settings table of docs/development.md, as every component reads them."""
    return {
        "IOTPIPE_KAFKA_BOOTSTRAP": p.bootstrap,
        "IOTPIPE_TOPIC_PREFIX": p.topic_prefix,
        "IOTPIPE_HBASE_HOST": p.thrift_host,
        "IOTPIPE_HBASE_PORT": str(p.thrift_port),
        "IOTPIPE_TABLE_PREFIX": p.table_prefix,
        "IOTPIPE_SITE_TZ": p.flink.time_zone,
        "IOTPIPE_LOG_LEVEL": "INFO",
    }


def _resources(r: Resources) -> Manifest:
    req = {k: v for k, v in (("cpu", r.cpu), ("memory", r.memory)) if v}
    return {"requests": req} if req else {}


def _container(name: str, image: str, env: list[Manifest], resources: Resources | None = None,
               **extra: Any) -> Manifest:
    c: Manifest = {"name": name, "image": image, "env": env, "securityContext": _CONTAINER_SECURITY}
    if resources is not None and _resources(resources):
        c["resources"] = _resources(resources)
    c.update(extra)
    return c


def _workload(p: PipelineSpec, kind: str, component: str, replicas: int, containers: list[Manifest],
              pod_annotations: dict[str, str] | None = None, **spec_extra: Any) -> Manifest:
    template: Manifest = {
        "metadata": {"labels": labels(p, component)},
        "spec": {"securityContext": _POD_SECURITY, "containers": containers},
    }
    if pod_annotations:
        template["metadata"]["annotations"] = pod_annotations
    return {
        "apiVersion": "apps/v1",
        "kind": kind,
        "metadata": _meta(p, child_name(p, component), component),
        "spec": {"replicas": replicas, "selector": {"matchLabels": selector(p, component)}, "template": template,
                 **spec_extra},
    }


def sync_deployment(p: PipelineSpec) -> Manifest:
    ttl = {t.key: t.ttl_seconds for t in p.tables}
    env = {
        **shared_env(p),
        "IOTPIPE_SYNC_GROUP": p.sync.consumer_group,
        "IOTPIPE_SYNC_BATCH_SIZE": str(p.sync.batch_size),
        "IOTPIPE_SYNC_BATCH_MS": str(p.sync.flush_interval_ms),
        "IOTPIPE_SYNC_CREATE_TABLES": "false",  # the operator owns the tables
        "IOTPIPE_SYNC_TTL_RAW": str(ttl["raw"]),
        "IOTPIPE_SYNC_TTL_AGGREGATES": str(ttl["aggregates"]),
        "IOTPIPE_SYNC_TTL_LATE": str(ttl["late"]),
        "IOTPIPE_SYNC_TTL_DEADLETTERS": str(ttl["deadletters"]),
        "IOTPIPE_SYNC_HTTP_HOST": "0.0.0.0",
        "IOTPIPE_SYNC_HTTP_PORT": str(SYNC_HTTP_PORT),
    }
    probe = {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10}
    container = _container("sync", p.sync.image, _env(env), p.sync.resources,
                           ports=[{"name": "http", "containerPort": SYNC_HTTP_PORT}], readinessProbe=probe,
                           livenessProbe={**probe, "failureThreshold": 6})
    replicas = 0 if p.suspend else p.sync.replicas
    return _workload(p, "Deployment", "sync", replicas, [container])


def bridge_deployment(p: PipelineSpec) -> Manifest:
    b = p.bridge
    env = _env({
        **shared_env(p),
        "IOTPIPE_BRIDGE_HOST": "0.0.0.0",
        "IOTPIPE_BRIDGE_PORT": str(b.port),
        "IOTPIPE_BRIDGE_AUTH": "on" if b.auth_secret_name else "off",
    })
    if b.auth_secret_name:
        env.append({"name": "IOTPIPE_BRIDGE_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": b.auth_secret_name, "key": b.auth_secret_key}}})
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 10}
    container = _container("bridge", b.image, env, b.resources, ports=[{"name": "http", "containerPort": b.port}],
                           readinessProbe=probe, livenessProbe={**probe, "failureThreshold": 6})
    return _workload(p, "Deployment", "bridge", 0 if p.suspend else b.replicas, [container])


def bridge_service(p: PipelineSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(p, child_name(p, "bridge"), "bridge"),
        "spec": {"type": p.bridge.service_type, "selector": selector(p, "bridge"),
                 "ports": [{"name": "http", "port": p.bridge.service_port, "targetPort": "http"}]},
    }


def bridge_ingress(p: PipelineSpec) -> Manifest | None:
    ing = p.bridge.ingress
    if not ing.enabled:
        return None
    spec: Manifest = {"rules": [{"host": ing.host, "http": {"paths": [{
        "path": ing.path, "pathType": "Prefix",
        "backend": {"service": {"name": child_name(p, "bridge"), "port": {"name": "http"}}}}]}}]}
    if ing.class_name:
        spec["ingressClassName"] = ing.class_name
    if ing.tls_secret_name:
        spec["tls"] = [{"hosts": [ing.host], "secretName": ing.tls_secret_name}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
            "metadata": _meta(p, child_name(p, "bridge"), "bridge"), "spec": spec}


def simulator_statefulset(p: PipelineSpec) -> Manifest:
    """A StatefulSet: pod ordinal i simulates sites [i*n, (i+1)*n), stable across restarts and rescheduling."""
    s = p.simulators
    env = _env({
        **shared_env(p),
        "IOTPIPE_SIM_SITES": str(s.sites_per_replica),
        # the StatefulSet ordinal from the pod's host name (<name>-<i>); sites start at offset i * sites
        "IOTPIPE_REPLICA_INDEX": "hostname",
        "IOTPIPE_SIM_SITE_OFFSET": "-1",
        "IOTPIPE_SIM_SPEED": f"{s.speed:g}",
        "IOTPIPE_SIM_CREATE_TOPIC": "false",  # the operator owns the topics
    })
    container = _container("simulator", s.image, env, s.resources)
    return _workload(p, "StatefulSet", "simulator", 0 if p.suspend else s.replicas, [container],
                     podManagementPolicy="Parallel")


def _flink_conf(p: PipelineSpec) -> dict[str, str]:
    f = p.flink
    conf = {
        "taskmanager.numberOfTaskSlots": str(f.tm_slots),
        "parallelism.default": str(f.parallelism),
        "execution.checkpointing.interval": f"{f.checkpoint_interval_seconds}s",
        "execution.checkpointing.mode": f.checkpoint_mode,
        "python.executable": f.python_executable,
        "python.client.executable": f.python_executable,
    }
    if f.checkpoint_storage_uri:
        conf["execution.checkpointing.dir"] = f.checkpoint_storage_uri
    if f.savepoints_uri:
        conf["execution.checkpointing.savepoint-dir"] = f.savepoints_uri
    conf.update(dict(f.configuration))
    return conf


def stream_job_env(p: PipelineSpec) -> dict[str, str]:
    """services/stream_job/stream_job/config.py settings."""
    env = {
        **shared_env(p),
        "IOTPIPE_FLINK_PARALLELISM": str(p.flink.parallelism),
        "IOTPIPE_LATENESS_S": str(p.flink.allowed_lateness_minutes * 60),
        "IOTPIPE_CHECKPOINT_INTERVAL_MS": str(p.flink.checkpoint_interval_seconds * 1000),
    }
    if p.flink.checkpoint_storage_uri:
        env["IOTPIPE_CHECKPOINT_DIR"] = p.flink.checkpoint_storage_uri
    return env


def python_driver_args(p: PipelineSpec) -> list[str]:
    """Arguments of Flink's PythonDriver: which Python runs the client, which module is the job."""
    return ["-pyclientexec", p.flink.python_executable, "-pym", p.flink.py_module]


def flink_deployment(p: PipelineSpec) -> Manifest:
    """A FlinkDeployment for the Flink Kubernetes Operator (PythonDriver in application mode)."""
    f = p.flink
    return {
        "apiVersion": FLINK_DEPLOYMENT_API,
        "kind": "FlinkDeployment",
        "metadata": _meta(p, child_name(p, "flink"), "flink"),
        "spec": {
            "image": f.image,
            "flinkVersion": f.flink_version,
            "flinkConfiguration": _flink_conf(p),
            "serviceAccount": "flink",
            "restartNonce": f.restart_nonce,
            "jobManager": {"resource": {"cpu": f.jm_cpu, "memory": f.jm_memory}},
            "taskManager": {"replicas": f.tm_replicas, "resource": {"cpu": f.tm_cpu, "memory": f.tm_memory}},
            "podTemplate": {"spec": {"containers": [{"name": "flink-main-container",
                                                      "env": _env(stream_job_env(p))}]}},
            "job": {
                "jarURI": f.jar_uri,
                "entryClass": "org.apache.flink.client.python.PythonDriver",
                "args": python_driver_args(p),
                "parallelism": f.parallelism,
                "upgradeMode": f.upgrade_mode,
                "state": "suspended" if p.suspend else "running",
            },
        },
    }


def _flink_properties(p: PipelineSpec) -> str:
    conf = {"jobmanager.rpc.address": child_name(p, "flink-jobmanager"), **_flink_conf(p),
            "jobmanager.memory.process.size": p.flink.jm_memory, "taskmanager.memory.process.size": p.flink.tm_memory}
    return "\n".join(f"{k}: {v}" for k, v in conf.items())


def flink_jobmanager(p: PipelineSpec) -> Manifest:
    """Standalone application mode without the Flink operator: the JobManager runs the job (`standalone-job`)."""
    env = _env({**stream_job_env(p), "FLINK_PROPERTIES": _flink_properties(p)})
    container = _container(
        "jobmanager", p.flink.image, env, Resources(f"{p.flink.jm_cpu:g}", None),
        command=[FLINK_ENTRYPOINT],  # the Flink image's launcher, whatever the image's own ENTRYPOINT is
        args=["standalone-job", "--job-classname", "org.apache.flink.client.python.PythonDriver",
              *python_driver_args(p)],
        ports=[{"name": "rpc", "containerPort": 6123}, {"name": "blob", "containerPort": 6124},
               {"name": "rest", "containerPort": 8081}],
        livenessProbe={"tcpSocket": {"port": 6123}, "periodSeconds": 15},
    )
    return _workload(p, "Deployment", "flink-jobmanager", 0 if p.suspend else 1, [container],
                     pod_annotations={"iotpipe.dev/restart-nonce": str(p.flink.restart_nonce)},
                     strategy={"type": "Recreate"})


def flink_taskmanager(p: PipelineSpec) -> Manifest:
    env = _env({**stream_job_env(p), "FLINK_PROPERTIES": _flink_properties(p)})
    container = _container("taskmanager", p.flink.image, env, Resources(f"{p.flink.tm_cpu:g}", None),
                           command=[FLINK_ENTRYPOINT], args=["taskmanager"],
                           ports=[{"name": "data", "containerPort": 6121}])
    return _workload(p, "Deployment", "flink-taskmanager", 0 if p.suspend else p.flink.tm_replicas, [container],
                     pod_annotations={"iotpipe.dev/restart-nonce": str(p.flink.restart_nonce)})


def flink_jobmanager_service(p: PipelineSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(p, child_name(p, "flink-jobmanager"), "flink-jobmanager"),
        "spec": {"type": "ClusterIP", "selector": selector(p, "flink-jobmanager"),
                 "ports": [{"name": "rpc", "port": 6123}, {"name": "blob", "port": 6124},
                           {"name": "rest", "port": 8081}]},
    }


def grafana_configmap(p: PipelineSpec) -> Manifest | None:
    g = p.grafana
    if not g.enabled:
        return None
    meta = _meta(p, child_name(p, "grafana-dashboard"), "grafana", {g.dashboard_label: "1"})
    meta["annotations"] = {"grafana_folder": g.folder}
    body = json.dumps(dashboard(p.name, p.namespace, g.datasource_uid), indent=1, sort_keys=True)
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {f"iotpipe-{p.name}.json": body}}


def desired_children(p: PipelineSpec, flink_operator: bool) -> list[Manifest]:
    """Every child the pipeline should have, in apply order. ``flink_operator``: the FlinkDeployment CRD exists."""
    out: list[Manifest | None] = []
    if flink_operator:
        out.append(flink_deployment(p))
    else:
        out += [flink_jobmanager_service(p), flink_jobmanager(p), flink_taskmanager(p)]
    out += [sync_deployment(p), bridge_service(p), bridge_deployment(p), bridge_ingress(p),
            simulator_statefulset(p), grafana_configmap(p)]
    return [m for m in out if m is not None]


def key(obj: Manifest) -> tuple[str, str, str]:
    """Identity of a child within its namespace: (apiVersion, kind, name)."""
    return str(obj["apiVersion"]), str(obj["kind"]), str(obj["metadata"]["name"])
