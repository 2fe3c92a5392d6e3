"""One idempotent reconcile of an IoTPipeline: observe -> validate -> apply -> report (status is written by the caller).

Run on create, update (incl. scale), resume and by the periodic pass (the caller serialises the passes over one
object). First the prefix claims (a pipeline whose topic or table prefix an older pipeline owns touches nothing:
``outcome.conflict``). Then each part (topics, tables, children) is reconciled on its own, and whatever it raises
becomes its conditions' reason: an unreachable Kafka or a Thrift error does not stop the tables or the Deployments;
the caller retries with backoff when ``outcome.retry`` is not empty. The I/O edges come in through ``deps.Deps``
(fakes in unit tests). Deletion is ``cleanup.cleanup``.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from iot_operator import API_VERSION, KIND, builders, claims, flinkbuilders, flinkstate, manifests
from iot_operator import status as st
from iot_operator.config import OperatorConfig
from iot_operator.deps import Deps, KubeApi
from iot_operator.kube import CHILD_KINDS, ApiRefused
from iot_operator.spec import InvalidSpec, PipelineSpec, parse
from iot_operator.tables import plan as table_plan
from iot_operator.tables import table_status
from iot_operator.topics import plan as topic_plan
from iot_operator.topics import topic_status
from iotcommon.errors import ServiceUnavailable

log = logging.getLogger(__name__)

#: condition type -> the child that reports it (component label)
_WORKLOADS = {st.SYNC: "sync", st.BRIDGE: "bridge", st.SIMULATORS: "simulator"}


class Emit(Protocol):
    def __call__(self, reason: str, message: str, warning: bool = False) -> None: ...


def reconcile(body: Mapping[str, Any], cfg: OperatorConfig, deps: Deps, emit: Emit) -> st.Outcome:
    """Bring the world in line with one IoTPipeline; report what was found."""
    out = st.Outcome()
    try:
        p = parse(body, cfg)
    except InvalidSpec as exc:
        out.invalid = str(exc)
        return out
    out.suspended = p.suspend
    try:
        out.conflict = claims.conflict(p, body, pipelines(deps.kube, p.namespace), cfg)
    except Exception as exc:  # without knowing the claims, touch nothing this pass
        out.errors.append(f"claims: {_describe(exc)}")
        return out
    if out.conflict is not None:
        return out  # another pipeline owns the data: never write to (or, later, delete) it
    _step(out, "kafka", (st.KAFKA,), lambda: _topics(p, deps, emit, out))
    _step(out, "hbase", (st.HBASE,), lambda: _tables(p, deps, emit, out))
    _step(out, "kubernetes", (st.FLINK, st.SYNC, st.BRIDGE, st.SIMULATORS, st.GRAFANA),
          lambda: _children(p, body, deps, emit, out))
    return out


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:500]


def _step(out: st.Outcome, name: str, ctypes: tuple[str, ...], run: Callable[[], None]) -> None:
    """Run one step; whatever it raises becomes its conditions' reason, never an aborted pass with a stale status."""
    try:
        run()
    except ServiceUnavailable as exc:
        out.unavailable.append(f"{name}: {exc}")
        for ctype in ctypes:
            out.add(st.Condition(ctype, False, st.DEPENDENCY_UNAVAILABLE, str(exc)))
    except Exception as exc:  # reported as Degraded with the reason, retried with backoff
        log.exception(f"reconcile step {name} failed")
        out.errors.append(f"{name}: {_describe(exc)}")
        for ctype in ctypes:
            out.add(st.Condition(ctype, False, st.RECONCILE_ERROR, _describe(exc)))


def pipelines(kube: KubeApi, namespace: str) -> list[dict[str, Any]]:
    """Every IoTPipeline the operator may read: all namespaces if allowed, else the pipeline's own."""
    try:
        return kube.list(API_VERSION, KIND, None, "")
    except ApiRefused as exc:
        if exc.status != 403:
            raise
    return kube.list(API_VERSION, KIND, namespace, "")


def _topics(p: PipelineSpec, deps: Deps, emit: Emit, out: st.Outcome) -> None:
    try:
        admin = deps.kafka(p)
        names = [t.name for t in p.kafka.topics]
        actual = admin.observe(names)
        pl = topic_plan(p.kafka.topics, actual)
        done, errors = admin.apply(pl)
        for what in done:
            reason = ("TopicCreated" if what.startswith("created") else
                      "PartitionsIncreased" if what.startswith("grew") else "TopicConfigDrift")
            emit(reason, what)
        if done:
            actual = admin.observe(names)
    except ServiceUnavailable as exc:
        out.unavailable.append(f"kafka: {exc}")
        out.add(st.Condition(st.KAFKA, False, st.DEPENDENCY_UNAVAILABLE, str(exc)))
        return
    problems = dict(errors)
    for t, msg in pl.unsupported:
        problems.setdefault(t.name, msg)
    out.details["topics"] = topic_status(p.kafka.topics, actual, problems)
    if errors:
        out.add(st.Condition(st.KAFKA, False, "KafkaError", "; ".join(errors.values())))
    elif pl.unsupported:
        out.add(st.Condition(st.KAFKA, False, st.NOT_SUPPORTED, "; ".join(m for _, m in pl.unsupported)))
    else:
        out.add(st.Condition(st.KAFKA, True, st.RECONCILED, f"{len(p.kafka.topics)} topics with prefix "
                                                                 f"{p.kafka.topic_prefix}"))


def _tables(p: PipelineSpec, deps: Deps, emit: Emit, out: st.Outcome) -> None:
    try:
        admin = deps.hbase(p)
        try:
            actual = admin.observe(p.hbase.tables)
            pl = table_plan(p.hbase.tables, actual)
            done, errors = admin.create(pl.create)
            for what in done:
                emit("HBaseTableCreated", what)
            existing = admin.existing()
        finally:
            admin.close()
    except ServiceUnavailable as exc:
        out.unavailable.append(f"hbase: {exc}")
        out.add(st.Condition(st.HBASE, False, st.DEPENDENCY_UNAVAILABLE, str(exc)))
        return
    problems = dict(errors)
    for t, msg in pl.drift:
        problems.setdefault(t.name, msg)
    out.details["hbase"] = {"tables": table_status(p.hbase.tables, existing, problems)}
    if errors:
        reason = "NamespaceNotFound" if any("NamespaceNotFound" in e for e in errors.values()) else "HBaseError"
        out.add(st.Condition(st.HBASE, False, reason, "; ".join(errors.values())))
    elif pl.drift:
        out.add(st.Condition(st.HBASE, False, st.NOT_SUPPORTED, "; ".join(m for _, m in pl.drift)))
    else:
        out.add(st.Condition(st.HBASE, True, st.RECONCILED, f"{len(p.hbase.tables)} tables with prefix "
                                                                 f"{p.hbase.table_prefix}"))


def owned(obj: Mapping[str, Any], uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in obj.get("metadata", {}).get("ownerReferences") or [])


def _ready(obj: Mapping[str, Any] | None) -> tuple[int, int]:
    """(desired, ready) replicas of a Deployment/StatefulSet."""
    if not obj:
        return 0, 0
    return int(obj.get("spec", {}).get("replicas") or 0), int(obj.get("status", {}).get("readyReplicas") or 0)


def _children(p: PipelineSpec, body: Mapping[str, Any], deps: Deps, emit: Emit, out: st.Outcome) -> None:
    kube = deps.kube
    flink_operator = kube.serves("flink.apache.org/v1beta1", "flinkdeployments")
    desired = builders.desired_children(p, flink_operator)
    selector = f"{manifests.PIPELINE_LABEL}={p.name}"
    existing: dict[tuple[str, str, str], dict[str, Any]] = {}
    for api_version, kind in CHILD_KINDS:
        if kind == "FlinkDeployment" and not flink_operator:
            continue
        for obj in kube.list(api_version, kind, p.namespace, selector):
            if owned(obj, p.uid):
                existing[manifests.key(obj)] = obj

    live: dict[tuple[str, str, str], dict[str, Any]] = {}
    failed: dict[str, str] = {}  # component -> message
    for obj in desired:
        k = manifests.key(obj)
        component = obj["metadata"]["labels"][manifests.COMPONENT_LABEL]
        try:
            live[k], created = kube.apply(obj)
        except ApiRefused as exc:
            failed[component] = f"applying {k[1]} {k[2]} was refused ({exc.status}): {exc.message}"
            continue
        if created:
            was = "recreated" if _was_reported(body, component) else "created"
            emit("ChildCreated" if was == "created" else "ChildRecreated", f"{was} {k[1]} {k[2]}")
        if k[1] == "StatefulSet" and k in existing:
            before, after = _ready(existing[k])[0], _ready(live[k])[0]
            if before != after:
                emit("ScaledSimulators", f"simulators scaled from {before} to {after} replicas ({p.simulators.sites} "
                                         f"sites)")
    keep = _bridge_token(p, kube, existing, emit, failed)
    for k, obj in existing.items():
        if k not in live and k not in keep and not any(manifests.key(d) == k for d in desired) and kube.delete(obj):
            emit("ChildDeleted", f"deleted {k[1]} {k[2]} (no longer in the spec)")

    def by(kind: str, component: str) -> dict[str, Any] | None:
        return live.get(("apps/v1", kind, manifests.child_name(p, component)))

    for ctype, component in _WORKLOADS.items():
        if component in failed:
            out.add(st.Condition(ctype, False, "ApplyFailed", failed[component]))
            continue
        kind = "StatefulSet" if component == "simulator" else "Deployment"
        desired_n, ready_n = _ready(by(kind, component))
        out.add(st.replicas_condition(ctype, desired_n, ready_n, p.suspend))
    sync_n, sync_ready = _ready(by("Deployment", "sync"))
    bridge_n, bridge_ready = _ready(by("Deployment", "bridge"))
    sim_n, sim_ready = _ready(by("StatefulSet", "simulator"))
    out.details["sync"] = {"replicas": sync_n, "readyReplicas": sync_ready}
    bridge: dict[str, Any] = {"replicas": bridge_n, "readyReplicas": bridge_ready,
                              "service": f"{manifests.child_name(p, 'bridge')}.{p.namespace}.svc:"
                                         f"{p.bridge.service_port}"}
    if p.bridge.ingress.enabled:
        scheme = "https" if p.bridge.ingress.tls_secret_name else "http"
        bridge["url"] = f"{scheme}://{p.bridge.ingress.host}{p.bridge.ingress.path}"
    token_secret = builders.bridge_token_secret_name(p)
    bridge["auth"] = "token" if token_secret else "off"
    if token_secret:
        bridge["tokenSecret"] = token_secret
    out.details["bridge"] = bridge
    out.details["simulators"] = {"replicas": p.simulators.replicas, "readyReplicas": sim_ready,
                                 "sites": p.simulators.sites if sim_n else 0,
                                 "labelSelector": manifests.label_selector(p, "simulator")}
    _flink(p, live, failed, flink_operator, kube, out)
    if "grafana" in failed:
        out.add(st.Condition(st.GRAFANA, False, "ApplyFailed", failed["grafana"]))
    elif p.grafana.enabled:
        name = manifests.child_name(p, "grafana-dashboard")
        out.details["grafana"] = {"configMap": name}
        out.add(st.Condition(st.GRAFANA, True, "Provisioned", f"ConfigMap {name} (label {p.grafana.dashboard_label})"))
    else:
        out.details["grafana"] = {}
        out.add(st.Condition(st.GRAFANA, True, "Disabled", "grafana.enabled is false"))


def _bridge_token(p: PipelineSpec, kube: KubeApi, existing: Mapping[tuple[str, str, str], Any], emit: Emit,
                  failed: dict[str, str]) -> set[tuple[str, str, str]]:
    """Create the bridge's token Secret once when the spec names none (auth on by default). Returns its key."""
    if not builders.generates_bridge_token(p):
        return set()
    secret = builders.bridge_token_secret(p, "")
    k = manifests.key(secret)
    if k in existing:
        return {k}  # never rewritten: the token clients hold stays valid
    try:
        _, created = kube.apply(builders.bridge_token_secret(p, secrets.token_urlsafe(32)))
    except ApiRefused as exc:
        failed["bridge"] = f"creating Secret {k[2]} was refused ({exc.status}): {exc.message}"
        return {k}
    if created:
        emit("BridgeTokenCreated", f"created Secret {k[2]} with a generated bridge token (key "
                                   f"{builders.BRIDGE_TOKEN_KEY})")
    return {k}


def _flink(p: PipelineSpec, live: Mapping[tuple[str, str, str], dict[str, Any]], failed: Mapping[str, str],
           flink_operator: bool, kube: KubeApi, out: st.Outcome) -> None:
    for component in ("flink", "flink-jobmanager", "flink-taskmanager"):
        if component in failed:
            out.add(st.Condition(st.FLINK, False, "ApplyFailed", failed[component]))
            return
    checkpoints = flinkbuilders.checkpoint_dir(p)
    if flink_operator:
        name = manifests.child_name(p, "flink")
        fd = live.get((flinkbuilders.FLINK_DEPLOYMENT_API, "FlinkDeployment", name)) or {}
        details, condition = flinkstate.from_flinkdeployment(name, fd, p.suspend)
        out.details["flink"] = {**details, "checkpoints": checkpoints}
        out.add(condition)
        return
    jm = live.get(("apps/v1", "Deployment", manifests.child_name(p, "flink-jobmanager")))
    tm = live.get(("apps/v1", "Deployment", manifests.child_name(p, "flink-taskmanager")))
    pods = [*kube.list("v1", "Pod", p.namespace, manifests.label_selector(p, "flink-jobmanager")),
            *kube.list("v1", "Pod", p.namespace, manifests.label_selector(p, "flink-taskmanager"))]
    details, condition = flinkstate.from_deployments(manifests.child_name(p, "flink-jobmanager"), _ready(jm),
                                                     _ready(tm), pods, p.suspend)
    out.details["flink"] = {**details, "checkpoints": checkpoints}
    out.add(condition)


def _was_reported(body: Mapping[str, Any], component: str) -> bool:
    """Whether an earlier pass already reported this component (so a creation now is a re-creation)."""
    key = {"sync": "sync", "bridge": "bridge", "simulator": "simulators", "grafana": "grafana"}.get(component, "flink")
    return key in (body.get("status") or {})
