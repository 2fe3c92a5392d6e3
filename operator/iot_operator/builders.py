"""spec -> Kubernetes manifests: every child of a pipeline (``desired_children``). Pure: plain dicts in, plain dicts
out, no API calls. The shared parts are in ``manifests``, the Flink job's in ``flinkbuilders``.
"""

from __future__ import annotations

import base64
import json

from iot_operator.dashboard import dashboard
from iot_operator.flinkbuilders import (
    checkpoint_claim,
    flink_deployment,
    flink_jobmanager,
    flink_jobmanager_service,
    flink_taskmanager,
)
from iot_operator.manifests import (
    Manifest,
    child_meta,
    child_name,
    env_vars,
    make_container,
    make_workload,
    selector,
    shared_env,
)
from iot_operator.spec import PipelineSpec

SYNC_HTTP_PORT = 9464
BRIDGE_TOKEN_KEY = "token"  # noqa: S105 - the key inside the generated Secret, not a secret


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
    container = make_container("sync", p.sync.image, env_vars(env), p.sync.resources,
                           ports=[{"name": "http", "containerPort": SYNC_HTTP_PORT}], readinessProbe=probe,
                           livenessProbe={**probe, "failureThreshold": 6})
    replicas = 0 if p.suspend else p.sync.replicas
    return make_workload(p, "Deployment", "sync", replicas, [container])


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
            "metadata": child_meta(p, child_name(p, "bridge-token"), "bridge"),
            "data": {BRIDGE_TOKEN_KEY: base64.b64encode(token.encode()).decode()}}


def bridge_deployment(p: PipelineSpec) -> Manifest:
    b = p.bridge
    secret = bridge_token_secret_name(p)
    env = env_vars({
        **shared_env(p),
        "IOTPIPE_SITE_ZONES": p.site_zones_text,
        "IOTPIPE_BRIDGE_HOST": "0.0.0.0",
        "IOTPIPE_BRIDGE_PORT": str(b.port),
        "IOTPIPE_BRIDGE_AUTH": "on" if secret else "off",
        "IOTPIPE_SYNC_GROUP": p.sync.consumer_group,  # at start it reads again what the sync workers have not stored
    })
    if secret:
        key_name = b.auth_secret_key if b.auth_secret_name else BRIDGE_TOKEN_KEY
        env.append({"name": "IOTPIPE_BRIDGE_TOKEN",
                    "valueFrom": {"secretKeyRef": {"name": secret, "key": key_name}}})
    probe = {"tcpSocket": {"port": "http"}, "periodSeconds": 10}
    container = make_container("bridge", b.image, env, b.resources, ports=[{"name": "http", "containerPort": b.port}],
                           readinessProbe=probe, livenessProbe={**probe, "failureThreshold": 6})
    return make_workload(p, "Deployment", "bridge", 0 if p.suspend else b.replicas, [container])


def bridge_service(p: PipelineSpec) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": child_meta(p, child_name(p, "bridge"), "bridge"),
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
            "metadata": child_meta(p, child_name(p, "bridge"), "bridge"), "spec": spec}


def simulator_statefulset(p: PipelineSpec) -> Manifest:
    """A StatefulSet: pod ordinal i simulates sites [i*n, (i+1)*n), stable across restarts and rescheduling."""
    s = p.simulators
    env = env_vars({
        **shared_env(p),
        "IOTPIPE_SITE_ZONES": p.site_zones_text,
        "IOTPIPE_SIM_SITES": str(s.sites_per_replica),
        # the StatefulSet ordinal from the pod's host name (<name>-<i>); sites start at offset i * sites
        "IOTPIPE_REPLICA_INDEX": "hostname",
        "IOTPIPE_SIM_SITE_OFFSET": "-1",
        "IOTPIPE_SIM_SPEED": f"{s.speed:g}",
        "IOTPIPE_SIM_CREATE_TOPIC": "false",  # the operator owns the topics
    })
    container = make_container("simulator", s.image, env, s.resources)
    return make_workload(p, "StatefulSet", "simulator", 0 if p.suspend else s.replicas, [container],
                     podManagementPolicy="Parallel")


def grafana_configmap(p: PipelineSpec) -> Manifest | None:
    g = p.grafana
    if not g.enabled:
        return None
    meta = child_meta(p, child_name(p, "grafana-dashboard"), "grafana", {g.dashboard_label: "1"})
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
