"""spec -> Kubernetes manifests. Pure: plain dicts in, plain dicts out, no API calls.

Every child carries an ownerReference to its IoTPipeline (controller, blockOwnerDeletion: what ``kopf.adopt`` sets),
the pipeline's labels, and the shared settings of docs/development.md as env vars.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from iot_operator import API_VERSION, FIELD_MANAGER, KIND
from iot_operator.dashboard import dashboard
from iot_operator.spec import PipelineSpec
from iot_operator.workloads import Resources

Manifest = dict[str, Any]

PIPELINE_LABEL = "iotpipe.dev/pipeline"
COMPONENT_LABEL = "app.kubernetes.io/component"
INSTANCE_LABEL = "app.kubernetes.io/instance"
FLINK_DEPLOYMENT_API = "flink.apache.org/v1beta1"
SYNC_HTTP_PORT = 9464
FLINK_ENTRYPOINT = "/docker-entrypoint.sh"  # of the official Flink images the stream-job image builds on

FLINK_UID = 9999  # the flink user of the Flink images (services/stream_job/Dockerfile: USER 9999:9999)
FLINK_DATA = "/flink-data"  # mount path of the checkpoint volume in the Flink pods
FLINK_DATA_VOLUME = "flink-data"
BRIDGE_TOKEN_KEY = "token"  # noqa: S105 - the key inside the generated Secret, not a secret

# Pod Security "restricted": non-root with the runtime's seccomp profile, no privilege escalation, no capabilities
_POD_SECURITY: Manifest = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
_CONTAINER_SECURITY: Manifest = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
# Flink pods also get the flink user's group on the checkpoint volume (fsGroup), so it is writable
_FLINK_POD_SECURITY: Manifest = {**_POD_SECURITY, "runAsUser": FLINK_UID, "runAsGroup": FLINK_UID,
                                 "fsGroup": FLINK_UID}


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
        "IOTPIPE_KAFKA_BOOTSTRAP": p.kafka.bootstrap,
        "IOTPIPE_TOPIC_PREFIX": p.kafka.topic_prefix,
        "IOTPIPE_HBASE_HOST": p.hbase.thrift.host,
        "IOTPIPE_HBASE_PORT": str(p.hbase.thrift.port),
        "IOTPIPE_TABLE_PREFIX": p.hbase.table_prefix,
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
              pod_annotations: dict[str, str] | None = None, pod_extra: Manifest | None = None,
              **spec_extra: Any) -> Manifest:
    template: Manifest = {
        "metadata": {"labels": labels(p, component)},
        "spec": {"securityContext": _POD_SECURITY, "containers": containers, **(pod_extra or {})},
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
    ttl = {t.key: t.ttl_seconds for t in p.hbase.tables}
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


def bridge_token_secret_name(p: PipelineSpec) -> str | None:
    """The Secret with the bridge's token: the user's (authSecretRef), the generated one, or None (auth off)."""
    if p.bridge.auth == "off":
        return None
    return p.bridge.auth_secret_name or child_name(p, "bridge-token")


def generates_bridge_token(p: PipelineSpec) -> bool:
    return p.bridge.auth != "off" and not p.bridge.auth_secret_name


def bridge_token_secret(p: PipelineSpec, token: str) -> Manifest:
    """The generated token Secret (owned by the pipeline, so it goes with it). Created once, never rewritten."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": _meta(p, child_name(p, "bridge-token"), "bridge"),
            "data": {BRIDGE_TOKEN_KEY: base64.b64encode(token.encode()).decode()}}


def bridge_deployment(p: PipelineSpec) -> Manifest:
    b = p.bridge
    secret = bridge_token_secret_name(p)
    env = _env({
        **shared_env(p),
        "IOTPIPE_SITE_ZONES": p.site_zones_text,
        "IOTPIPE_BRIDGE_HOST": "0.0.0.0",
        "IOTPIPE_BRIDGE_PORT": str(b.port),
        "IOTPIPE_BRIDGE_AUTH": "on" if secret else "off",
    })
    if secret:
        key_name = b.auth_secret_key if b.auth_secret_name else BRIDGE_TOKEN_KEY
        env.append({"name": "IOTPIPE_BRIDGE_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": key_name}}})
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
        "IOTPIPE_SITE_ZONES": p.site_zones_text,
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


def uses_checkpoint_volume(p: PipelineSpec) -> bool:
    """Checkpoints live on a PersistentVolumeClaim unless the spec gives a storage URI."""
    return not p.flink.checkpoint_storage_uri


def checkpoint_dir(p: PipelineSpec) -> str:
    return p.flink.checkpoint_storage_uri or f"file://{FLINK_DATA}/checkpoints"


def savepoint_dir(p: PipelineSpec) -> str | None:
    if p.flink.savepoints_uri:
        return p.flink.savepoints_uri
    return f"file://{FLINK_DATA}/savepoints" if uses_checkpoint_volume(p) else None


def ha_dir(p: PipelineSpec) -> str:
    """Flink's high-availability metadata (FlinkDeployment mode): beside the checkpoints."""
    return f"{checkpoint_dir(p).rstrip('/')}/ha" if p.flink.checkpoint_storage_uri else f"file://{FLINK_DATA}/ha"


def checkpoint_claim(p: PipelineSpec) -> Manifest | None:
    """The checkpoint volume's PersistentVolumeClaim (owned by the pipeline), or None with a storage URI."""
    if not uses_checkpoint_volume(p):
        return None
    v = p.flink.checkpoint_volume
    spec: Manifest = {"accessModes": [v.access_mode], "resources": {"requests": {"storage": v.size}}}
    if v.storage_class:
        spec["storageClassName"] = v.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": _meta(p, child_name(p, "flink-checkpoints"), "flink"), "spec": spec}


def _flink_volume(p: PipelineSpec) -> tuple[list[Manifest], list[Manifest]]:
    """(volumes, volumeMounts) of a Flink pod: the checkpoint claim at FLINK_DATA, if there is one."""
    if not uses_checkpoint_volume(p):
        return [], []
    return ([{"name": FLINK_DATA_VOLUME, "persistentVolumeClaim": {"claimName": child_name(p, "flink-checkpoints")}}],
            [{"name": FLINK_DATA_VOLUME, "mountPath": FLINK_DATA}])


def _flink_conf(p: PipelineSpec, high_availability: bool) -> dict[str, str]:
    f = p.flink
    conf = {
        "taskmanager.numberOfTaskSlots": str(f.tm_slots),
        "parallelism.default": str(f.parallelism),
        "execution.checkpointing.interval": f"{f.checkpoint_interval_seconds}s",
        "execution.checkpointing.mode": f.checkpoint_mode,
        "execution.checkpointing.dir": checkpoint_dir(p),
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "python.executable": f.python_executable,
        "python.client.executable": f.python_executable,
    }
    savepoints = savepoint_dir(p)
    if savepoints:
        conf["execution.checkpointing.savepoint-dir"] = savepoints
    if high_availability:  # the Flink operator's last-state upgrades (and JobManager restarts) recover through HA
        conf["high-availability.type"] = "kubernetes"
        conf["high-availability.storageDir"] = ha_dir(p)
    conf.update(dict(f.configuration))
    return conf


def stream_job_env(p: PipelineSpec, flink_operator: bool) -> dict[str, str]:
    """services/stream_job/stream_job/config.py settings.

    Deployments mode: the job itself restores from the newest checkpoint in its checkpoint directory on every start
    (IOTPIPE_RESTORE=latest). FlinkDeployment mode: the Flink operator restores (HA metadata / savepoints), so the
    job must not pick a checkpoint of its own.
    """
    return {
        **shared_env(p),
        "IOTPIPE_SITE_ZONES": p.site_zones_text,
        "IOTPIPE_FLINK_PARALLELISM": str(p.flink.parallelism),
        "IOTPIPE_LATENESS_S": str(p.flink.allowed_lateness_minutes * 60),
        "IOTPIPE_CHECKPOINT_INTERVAL_MS": str(p.flink.checkpoint_interval_seconds * 1000),
        "IOTPIPE_CHECKPOINT_DIR": checkpoint_dir(p),
        "IOTPIPE_RESTORE": "none" if flink_operator else "latest",
    }


def python_driver_args(p: PipelineSpec) -> list[str]:
    """Arguments of Flink's PythonDriver: which Python runs the client, which module is the job."""
    return ["-pyclientexec", p.flink.python_executable, "-pym", p.flink.py_module]


def flink_deployment(p: PipelineSpec) -> Manifest:
    """A FlinkDeployment for the Flink Kubernetes Operator (PythonDriver in application mode).

    What the operator's validator asks for: a checkpoint directory for last-state/savepoint upgrades, Kubernetes HA
    for last-state, a savepoint directory for savepoint upgrades. The pod template passes Pod Security "restricted".
    """
    f = p.flink
    volumes, mounts = _flink_volume(p)
    main: Manifest = {"name": "flink-main-container", "env": _env(stream_job_env(p, flink_operator=True)),
                      "securityContext": _CONTAINER_SECURITY}
    if mounts:
        main["volumeMounts"] = mounts
    pod_spec: Manifest = {"securityContext": _FLINK_POD_SECURITY, "containers": [main]}
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": FLINK_DEPLOYMENT_API,
        "kind": "FlinkDeployment",
        "metadata": _meta(p, child_name(p, "flink"), "flink"),
        "spec": {
            "image": f.image,
            "flinkVersion": f.flink_version,
            "flinkConfiguration": _flink_conf(p, high_availability=True),
            "serviceAccount": "flink",
            "restartNonce": f.restart_nonce,
            "jobManager": {"resource": {"cpu": f.jm_cpu, "memory": f.jm_memory}},
            "taskManager": {"replicas": f.tm_replicas, "resource": {"cpu": f.tm_cpu, "memory": f.tm_memory}},
            "podTemplate": {"metadata": {"labels": labels(p, "flink")}, "spec": pod_spec},
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
    conf = {"jobmanager.rpc.address": child_name(p, "flink-jobmanager"), **_flink_conf(p, high_availability=False),
            "jobmanager.memory.process.size": p.flink.jm_memory, "taskmanager.memory.process.size": p.flink.tm_memory}
    return "\n".join(f"{k}: {v}" for k, v in conf.items())


def _flink_pod_extra(p: PipelineSpec) -> Manifest:
    volumes, _ = _flink_volume(p)
    return {"securityContext": _FLINK_POD_SECURITY, **({"volumes": volumes} if volumes else {})}


def _flink_container_extra(p: PipelineSpec) -> Manifest:
    _, mounts = _flink_volume(p)
    return {"volumeMounts": mounts} if mounts else {}


def flink_jobmanager(p: PipelineSpec) -> Manifest:
    """Standalone application mode without the Flink operator: the JobManager runs the job (`standalone-job`)."""
    env = _env({**stream_job_env(p, flink_operator=False), "FLINK_PROPERTIES": _flink_properties(p)})
    container = _container(
        "jobmanager", p.flink.image, env, Resources(f"{p.flink.jm_cpu:g}", None),
        command=[FLINK_ENTRYPOINT],  # the Flink image's launcher, whatever the image's own ENTRYPOINT is
        args=["standalone-job", "--job-classname", "org.apache.flink.client.python.PythonDriver",
              *python_driver_args(p)],
        ports=[{"name": "rpc", "containerPort": 6123}, {"name": "blob", "containerPort": 6124},
               {"name": "rest", "containerPort": 8081}],
        livenessProbe={"tcpSocket": {"port": 6123}, "periodSeconds": 15},
        **_flink_container_extra(p),
    )
    return _workload(p, "Deployment", "flink-jobmanager", 0 if p.suspend else 1, [container],
                     pod_annotations={"iotpipe.dev/restart-nonce": str(p.flink.restart_nonce)},
                     pod_extra=_flink_pod_extra(p), strategy={"type": "Recreate"})


def flink_taskmanager(p: PipelineSpec) -> Manifest:
    env = _env({**stream_job_env(p, flink_operator=False), "FLINK_PROPERTIES": _flink_properties(p)})
    container = _container("taskmanager", p.flink.image, env, Resources(f"{p.flink.tm_cpu:g}", None),
                           command=[FLINK_ENTRYPOINT], args=["taskmanager"],
                           ports=[{"name": "data", "containerPort": 6121}], **_flink_container_extra(p))
    return _workload(p, "Deployment", "flink-taskmanager", 0 if p.suspend else p.flink.tm_replicas, [container],
                     pod_annotations={"iotpipe.dev/restart-nonce": str(p.flink.restart_nonce)},
                     pod_extra=_flink_pod_extra(p))


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
    out: list[Manifest | None] = [checkpoint_claim(p)]
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
