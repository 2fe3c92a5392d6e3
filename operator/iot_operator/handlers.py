"""kopf handlers: thin wiring around ``reconcile`` (run: ``kopf run -m iot_operator.handlers``).

create / update / resume and a periodic timer all call the same idempotent reconcile, then write the status only when
it changed. Kafka/HBase unreachable -> status says so, then kopf retries with exponential backoff. InvalidSpec -> status
says so, no retry (the timer re-checks at its normal pace, so a fixed dependency needs no edit).
A deletion handler (and therefore kopf's finalizer) exists only for objects with a Delete policy.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import kopf

from iot_operator import API_VERSION, FINALIZER, GROUP, PLURAL, VERSION, metrics
from iot_operator import status as st
from iot_operator.config import DESCRIPTION, OperatorConfig
from iot_operator.reconcile import Deps, WorkloadsStopping, cleanup, lock_for, real_deps, reconcile
from iotcommon.config import describe, load
from iotcommon.errors import ConfigError, ServiceUnavailable

log = logging.getLogger("iot_operator")

try:
    CONFIG = load(OperatorConfig, [], os.environ, prog="iot_operator", description=DESCRIPTION)
except ConfigError as _exc:
    print(f"iot_operator: {_exc}", file=sys.stderr)
    raise SystemExit(2) from _exc

_deps: Deps | None = None


def deps() -> Deps:
    global _deps
    if _deps is None:
        _deps = real_deps(CONFIG)
    return _deps


def pipeline_path(namespace: str, name: str) -> str:
    return f"/apis/{API_VERSION}/namespaces/{namespace}/{PLURAL}/{name}"


def backoff(retry: int) -> float:
    """5 s, 10 s, 20 s, ... up to IOTPIPE_OPERATOR_MAX_BACKOFF_SECONDS."""
    return float(min(CONFIG.max_backoff_seconds, 5.0 * 2 ** min(retry, 16)))


@kopf.on.startup()
def startup(settings: kopf.OperatorSettings, logger: logging.Logger | logging.LoggerAdapter[Any], **_: Any) -> None:
    logging.getLogger("iot_operator").setLevel(CONFIG.log_level)
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
    if CONFIG.metrics_enabled:
        port = metrics.serve(CONFIG.metrics_host, CONFIG.metrics_port)
        logger.info(f"metrics on http://{CONFIG.metrics_host}:{port}/metrics")
    logger.info(f"iot_operator config: {describe(CONFIG)}")


def _emitter(body: Mapping[str, Any], pipeline: str) -> Any:
    """Log, count and post an Event (posted directly: the periodic pass runs outside kopf's handler context)."""

    def emit(reason: str, message: str, warning: bool = False) -> None:
        metrics.ACTIONS.labels(pipeline, reason).inc()
        log.info(f"[{pipeline}] {reason}: {message}")
        try:
            deps().kube.post_event(body, "Warning" if warning else "Normal", reason, message)
        except Exception as exc:  # an event is worth a log line, never a failed reconcile
            log.warning(f"[{pipeline}] could not post event {reason}: {exc}")

    return emit


def _pass(trigger: str, body: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """One reconcile + the status it wants. Returns (status merge patch, what failed and needs a retry)."""
    meta = body.get("metadata") or {}
    pipeline = f"{meta.get('namespace')}/{meta.get('name')}"
    started = time.monotonic()
    emit = _emitter(body, pipeline)
    outcome = reconcile(body, CONFIG, deps(), emit)
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


def _run(trigger: str, body: kopf.Body, patch: kopf.Patch, retry: int) -> None:
    changes, unavailable = _pass(trigger, body)
    for key, value in changes.items():
        patch.status[key] = value
    if unavailable:
        delay = backoff(retry)
        raise kopf.TemporaryError(f"step failed or dependency unavailable, retrying in {delay:.0f} s: "
                                  f"{'; '.join(unavailable)}",
                                  delay=delay)


@kopf.on.resume(GROUP, VERSION, PLURAL)
def on_resume(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("resume", body, patch, retry)


@kopf.on.create(GROUP, VERSION, PLURAL)
def on_create(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("create", body, patch, retry)


@kopf.on.update(GROUP, VERSION, PLURAL)
def on_update(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("update", body, patch, retry)


# ---- drift correction -----------------------------------------------------------------------------------------
# Not a kopf timer: kopf puts a finalizer on every object that has a timer or daemon, and IoTPipelines must carry a
# finalizer only when a Delete policy needs one. So the watch keeps a set of known objects and one background task
# re-reads each (fresh from the API) every IOTPIPE_OPERATOR_RESYNC_SECONDS and runs the same reconcile.

_known: dict[str, tuple[str, str]] = {}  # uid -> (namespace, name)
_resync_task: asyncio.Task[None] | None = None


@kopf.on.event(GROUP, VERSION, PLURAL)
def track(event: Mapping[str, Any], body: kopf.Body, **_: Any) -> None:
    uid = str(body.metadata.uid)
    if event.get("type") == "DELETED":
        _known.pop(uid, None)
    else:
        _known[uid] = (str(body.metadata.namespace), str(body.metadata.name))


def _resync_one(uid: str, namespace: str, name: str) -> list[str]:
    kube = deps().kube
    with lock_for(uid):  # read the object only when no other pass runs on it: never reconcile a stale spec
        body = kube.get(pipeline_path(namespace, name))
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            return []
        changes, unavailable = _pass("timer", body)
        if changes:
            kube.patch_status(pipeline_path(namespace, name), changes)
    return unavailable


async def _resync_loop() -> None:
    loop = asyncio.get_running_loop()
    failures: dict[str, int] = {}
    due: dict[str, float] = {}
    while True:
        await asyncio.sleep(CONFIG.resync_seconds)
        metrics.HEARTBEAT.set(time.time())
        for uid, (namespace, name) in list(_known.items()):
            if due.get(uid, 0.0) > time.monotonic():
                continue
            ctx = contextvars.copy_context()  # kopf's context (event posting) for the worker thread
            try:
                unavailable = await loop.run_in_executor(None, ctx.run, _resync_one, uid, namespace, name)
            except Exception:  # one bad object must not stop drift correction for the others
                log.exception(f"[{namespace}/{name}] periodic reconcile failed")
                unavailable = ["error"]
            if unavailable:
                failures[uid] = failures.get(uid, 0) + 1
                due[uid] = time.monotonic() + backoff(failures[uid] - 1)
            else:
                failures.pop(uid, None)
                due.pop(uid, None)


@kopf.on.startup()
async def start_resync(**_: Any) -> None:
    global _resync_task
    _resync_task = asyncio.create_task(_resync_loop(), name="iotpipeline resync")


@kopf.on.cleanup()
async def stop_resync(**_: Any) -> None:
    if _resync_task is not None:
        _resync_task.cancel()


def needs_cleanup(spec: kopf.Spec, **_: Any) -> bool:
    """Only objects with a Delete policy get the finalizer (kopf adds it because this handler then applies)."""
    kafka, hbase = spec.get("kafka") or {}, spec.get("hbase") or {}
    return bool(kafka.get("topicDeletionPolicy") == "Delete" or hbase.get("tableDeletionPolicy") == "Delete")


@kopf.on.delete(GROUP, VERSION, PLURAL, when=needs_cleanup)
def on_delete(body: kopf.Body, retry: int, **_: Any) -> None:
    pipeline = f"{body.metadata.namespace}/{body.metadata.name}"
    try:
        cleanup(body, CONFIG, deps(), _emitter(body, pipeline))
    except WorkloadsStopping as exc:  # pods take their grace period to go: check again soon, without backoff
        raise kopf.TemporaryError(f"cleanup postponed: {exc}", delay=min(5.0, backoff(0))) from exc
    except ServiceUnavailable as exc:
        raise kopf.TemporaryError(f"cleanup postponed: {exc}", delay=backoff(retry)) from exc
    metrics.set_phase(pipeline, None)


@kopf.on.probe(id="watch")
async def watch_alive(**_: Any) -> str:
    """Liveness: fails when the IoTPipeline watch-stream task is gone (kopf#1276: a dead watch is otherwise silent)."""
    watchers = [t for t in asyncio.all_tasks() if t.get_name().startswith("watcher for ") and PLURAL in t.get_name()]
    if not watchers or all(t.done() for t in watchers):
        raise kopf.PermanentError(f"no live watch-stream for {PLURAL}")
    if _resync_task is None or _resync_task.done():
        raise kopf.PermanentError("the periodic reconcile task is not running")
    return f"{len(watchers)} watch-stream(s) alive, {len(_known)} pipeline(s) known"
