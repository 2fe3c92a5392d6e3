"""kopf handlers: thin wiring around ``reconcile`` (run: ``kopf run -m iot_operator.handlers``).

create / update / resume and a periodic pass all call the same idempotent reconcile, then write the status only when
it changed. Kafka/HBase unreachable -> status says so, then kopf retries with exponential backoff. InvalidSpec ->
status says so, no retry (the periodic pass re-checks at its normal pace, so a fixed dependency needs no edit).
The startup handler reads the settings (a bad one stops the operator) and puts an ``OperatorState`` into kopf's memo;
every handler takes what it needs from ``memo.state``.
A deletion handler (and therefore kopf's finalizer) exists only for objects with a Delete policy.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import os
import time
from collections.abc import Mapping
from typing import Any

import kopf

from iot_operator import API_VERSION, FINALIZER, GROUP, PLURAL, VERSION, metrics
from iot_operator import status as st
from iot_operator.cleanup import WorkloadsStopping, cleanup
from iot_operator.config import DESCRIPTION, OperatorConfig
from iot_operator.deps import real_deps
from iot_operator.reconcile import reconcile
from iot_operator.state import OperatorState
from iotcommon.config import describe, load
from iotcommon.errors import ConfigError, ServiceUnavailable

log = logging.getLogger("iot_operator")


def pipeline_path(namespace: str, name: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo,
                  logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    """Read the settings (a bad one stops the operator), create the state, configure kopf, start the periodic pass.
    One handler: kopf would retry a second startup handler forever after this one failed."""
    try:
        config = load(OperatorConfig, [], os.environ, prog="iot_operator", description=DESCRIPTION)
    except ConfigError as exc:
        raise kopf.PermanentError(f"iot_operator: {exc}") from exc
    memo.state = state = OperatorState(config, real_deps(config))
    logging.getLogger("iot_operator").setLevel(config.log_level)
    settings.persistence.finalizer = FINALIZER
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix=GROUP,
                                                                          key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # our own events say what happened; kopf posts only problems
    settings.watching.server_timeout = 300
    # the namespaces are given exactly (--namespace) or all (--all-namespaces): no need to list namespaces or CRDs,
    # which a namespaced Role does not allow
    settings.scanning.disabled = True
    settings.execution.max_workers = 8
    if config.metrics_enabled:
        port = metrics.serve(config.metrics_host, config.metrics_port)
        logger.info(f"metrics on http://{config.metrics_host}:{port}/metrics")
    logger.info(f"iot_operator config: {describe(config)}")
    state.resync_task = asyncio.create_task(_resync_loop(state), name="iotpipeline resync")


def _state(memo: kopf.Memo) -> OperatorState:
    state: OperatorState = memo.state
    return state


def _emitter(state: OperatorState, body: Mapping[str, Any], pipeline: str) -> Any:
    """Log, count and post an Event (posted directly: the periodic pass runs outside kopf's handler context)."""

    def emit(reason: str, message: str, warning: bool = False) -> None:
        metrics.ACTIONS.labels(pipeline, reason).inc()
        log.info(f"[{pipeline}] {reason}: {message}")
        try:
            state.deps.kube.post_event(body, "Warning" if warning else "Normal", reason, message)
        except Exception as exc:  # an event is worth a log line, never a failed reconcile
            log.warning(f"[{pipeline}] could not post event {reason}: {exc}")

    return emit


def _pass(state: OperatorState, trigger: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One reconcile + the status it wants. Returns (status merge patch, what failed and needs a retry)."""
    meta = body.get("metadata") or {}
    pipeline = f"{meta.get('namespace')}/{meta.get('name')}"
    started = time.monotonic()
    emit = _emitter(state, body, pipeline)
    with state.lock_for(str(meta.get("uid", ""))):
        outcome = reconcile(body, state.config, state.deps, emit)
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    metrics.RECONCILES.labels(pipeline, trigger, metrics.result_of(outcome)).inc()

    old: Mapping[str, Any] = body.get("status") or {}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    desired = st.desired_status(outcome, int(meta.get("generation") or 0), old, now)
    changes = st.status_patch(old, desired)
    if changes:
        metrics.STATUS_WRITES.labels(pipeline).inc()
        for c in st.transitions(old.get("conditions"), desired["conditions"]):
            if c["type"] == st.READY and c["status"] != "True" and c["reason"] in (
                    st.INVALID_SPEC, st.DEPENDENCY_UNAVAILABLE, st.RECONCILE_ERROR, st.CONFLICT):
                emit(c["reason"], c["message"], warning=True)
    metrics.set_phase(pipeline, desired["phase"])
    return changes, outcome.retry


def _run(trigger: str, memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, retry: int) -> None:
    state = _state(memo)
    changes, unavailable = _pass(state, trigger, body)
    for key, value in changes.items():
        patch.status[key] = value
    if unavailable:
        delay = state.backoff(retry)
        raise kopf.TemporaryError(f"step failed or dependency unavailable, retrying in {delay:.0f} s: "
                                  f"{'; '.join(unavailable)}",
                                  delay=delay)


@kopf.on.resume(GROUP, VERSION, PLURAL)
def on_resume(memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("resume", memo, body, patch, retry)


@kopf.on.create(GROUP, VERSION, PLURAL)
def on_create(memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("create", memo, body, patch, retry)


@kopf.on.update(GROUP, VERSION, PLURAL)
def on_update(memo: kopf.Memo, body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("update", memo, body, patch, retry)


# ---- drift correction -----------------------------------------------------------------------------------------
# Not a kopf timer: kopf puts a finalizer on every object that has a timer or daemon, and IoTPipelines must carry a
# finalizer only when a Delete policy needs one. So the watch keeps a set of known objects and one background task
# re-reads each (fresh from the API) every IOTPIPE_OPERATOR_RESYNC_SECONDS and runs the same reconcile.


@kopf.on.event(GROUP, VERSION, PLURAL)
def track(event: Mapping[str, Any], memo: kopf.Memo, body: kopf.Body, **_: Any) -> None:
    known = _state(memo).known
    uid = str(body.metadata.uid)
    if event.get("type") == "DELETED":
        known.pop(uid, None)
    else:
        known[uid] = (str(body.metadata.namespace), str(body.metadata.name))


def _resync_one(state: OperatorState, uid: str, namespace: str, name: str) -> list[str]:
    kube = state.deps.kube
    with state.lock_for(uid):  # read the object only when no other pass runs on it: never reconcile a stale spec
        body = kube.get(pipeline_path(namespace, name))
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return []
        changes, unavailable = _pass(state, "timer", body)
        if changes:
            kube.patch_status(pipeline_path(namespace, name), changes)
    return unavailable


async def _resync_loop(state: OperatorState) -> None:
    loop = asyncio.get_running_loop()
    failures: dict[str, int] = {}
    due: dict[str, float] = {}
    while True:
        await asyncio.sleep(state.config.resync_seconds)
        metrics.HEARTBEAT.set(time.time())
        for uid, (namespace, name) in list(state.known.items()):
            if due.get(uid, 0.0) > time.monotonic():
                continue
            ctx = contextvars.copy_context()  # kopf's context (event posting) for the worker thread
            try:
                unavailable = await loop.run_in_executor(None, ctx.run, _resync_one, state, uid, namespace, name)
            except Exception:  # one bad object must not stop drift correction for the others
                log.exception(f"[{namespace}/{name}] periodic reconcile failed")
                unavailable = ["error"]
            if unavailable:
                failures[uid] = failures.get(uid, 0) + 1
                due[uid] = time.monotonic() + state.backoff(failures[uid] - 1)
            else:
                failures.pop(uid, None)
                due.pop(uid, None)


@kopf.on.cleanup()
async def stop_resync(memo: kopf.Memo, **_: Any) -> None:
    task = _state(memo).resync_task if "state" in memo else None
    if task is not None:
        task.cancel()


def needs_cleanup(spec: kopf.Spec, **_: Any) -> bool:
    """Only objects with a Delete policy get the finalizer (kopf adds it because this handler then applies)."""
    kafka, hbase = spec.get("kafka") or {}, spec.get("hbase") or {}
    return bool(kafka.get("topicDeletionPolicy") == "Delete" or hbase.get("tableDeletionPolicy") == "Delete")


@kopf.on.delete(GROUP, VERSION, PLURAL, when=needs_cleanup)
def on_delete(memo: kopf.Memo, body: kopf.Body, retry: int, **_: Any) -> None:
    state = _state(memo)
    pipeline = f"{body.metadata.namespace}/{body.metadata.name}"
    try:
        with state.lock_for(str(body.metadata.uid)):
            cleanup(body, state.config, state.deps, _emitter(state, body, pipeline))
    except WorkloadsStopping as exc:  # pods take their grace period to go: check again soon, without backoff
        raise kopf.TemporaryError(f"cleanup postponed: {exc}", delay=min(5.0, state.backoff(0))) from exc
    except ServiceUnavailable as exc:
        raise kopf.TemporaryError(f"cleanup postponed: {exc}", delay=state.backoff(retry)) from exc
    metrics.set_phase(pipeline, None)


@kopf.on.probe(id="watch")
async def watch_alive(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: fails when the IoTPipeline watch-stream task is gone (kopf#1276: a dead watch is otherwise silent)."""
    watchers = [t for t in asyncio.all_tasks() if t.get_name().startswith("watcher for ") and PLURAL in t.get_name()]
    if not watchers or all(t.done() for t in watchers):
        raise kopf.PermanentError(f"no live watch-stream for {PLURAL}")
    state = _state(memo)
    if state.resync_task is None or state.resync_task.done():
        raise kopf.PermanentError("the periodic reconcile task is not running")
    return f"{len(watchers)} watch-stream(s) alive, {len(state.known)} pipeline(s) known"
