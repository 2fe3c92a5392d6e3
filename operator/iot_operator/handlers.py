"""kopf handlers: thin wiring around ``reconcile`` (run: ``kopf run -m iot_operator.handlers``).

create / update / resume and a periodic timer all call the same idempotent reconcile, then write the status only when
it changed. Kafka/HBase unreachable -> status says so, then kopf retries with exponential backoff. InvalidSpec -> status
says so, no retry (the timer re-checks at its normal pace, so a fixed dependency needs no edit).
A deletion handler (and therefore kopf's finalizer) exists only for objects with a Delete policy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Mapping
from typing import Any

import kopf

from iot_operator import FINALIZER, GROUP, PLURAL, VERSION, metrics
from iot_operator import status as st
from iot_operator.config import DESCRIPTION, OperatorConfig
from iot_operator.reconcile import Deps, cleanup, real_deps, reconcile
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
    settings.posting.level = logging.INFO
    settings.watching.server_timeout = 300
    settings.execution.max_workers = 8
    if CONFIG.metrics_enabled:
        port = metrics.serve(CONFIG.metrics_host, CONFIG.metrics_port)
        logger.info(f"metrics on http://{CONFIG.metrics_host}:{port}/metrics")
    logger.info(f"iot_operator config: {describe(CONFIG)}")


def _emitter(body: kopf.Body, pipeline: str) -> Any:
    def emit(reason: str, message: str, warning: bool = False) -> None:
        metrics.ACTIONS.labels(pipeline, reason).inc()
        log.info(f"[{pipeline}] {reason}: {message}")
        kopf.event(body, type="Warning" if warning else "Normal", reason=reason, message=message)

    return emit


def _run(trigger: str, body: kopf.Body, patch: kopf.Patch, retry: int) -> None:
    pipeline = f"{body.metadata.namespace}/{body.metadata.name}"
    started = time.monotonic()
    emit = _emitter(body, pipeline)
    outcome = reconcile(body, CONFIG, deps(), emit)
    metrics.RECONCILE_SECONDS.observe(time.monotonic() - started)
    metrics.RECONCILES.labels(pipeline, trigger, metrics.result_of(outcome)).inc()

    old: Mapping[str, Any] = body.get("status") or {}
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    desired = st.desired_status(outcome, int(body.metadata.get("generation") or 0), old, now)
    changes = st.status_patch(old, desired)
    if changes:
        metrics.STATUS_WRITES.labels(pipeline).inc()
        for key, value in changes.items():
            patch.status[key] = value
        for c in st.transitions(old.get("conditions"), desired["conditions"]):
            if c["type"] == st.READY and c["status"] != "True" and c["reason"] in (st.INVALID_SPEC,
                                                                                 st.DEPENDENCY_UNAVAILABLE):
                emit(c["reason"], c["message"], warning=True)
    metrics.set_phase(pipeline, desired["phase"])
    if outcome.unavailable:
        delay = backoff(retry)
        raise kopf.TemporaryError(f"dependency unavailable, retrying in {delay:.0f} s: "
                                  f"{'; '.join(outcome.unavailable)}", delay=delay)


@kopf.on.resume(GROUP, VERSION, PLURAL)
def on_resume(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("resume", body, patch, retry)


@kopf.on.create(GROUP, VERSION, PLURAL)
def on_create(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("create", body, patch, retry)


@kopf.on.update(GROUP, VERSION, PLURAL)
def on_update(body: kopf.Body, patch: kopf.Patch, retry: int, **_: Any) -> None:
    _run("update", body, patch, retry)


@kopf.timer(GROUP, VERSION, PLURAL, interval=CONFIG.resync_seconds, initial_delay=CONFIG.resync_seconds)
def on_timer(body: kopf.Body, patch: kopf.Patch, **kwargs: Any) -> None:
    _run("timer", body, patch, int(kwargs.get("retry") or 0))


def needs_cleanup(spec: kopf.Spec, **_: Any) -> bool:
    """Only objects with a Delete policy get the finalizer (kopf adds it because this handler then applies)."""
    kafka, hbase = spec.get("kafka") or {}, spec.get("hbase") or {}
    return bool(kafka.get("topicDeletionPolicy") == "Delete" or hbase.get("tableDeletionPolicy") == "Delete")


@kopf.on.delete(GROUP, VERSION, PLURAL, when=needs_cleanup)
def on_delete(body: kopf.Body, retry: int, **_: Any) -> None:
    pipeline = f"{body.metadata.namespace}/{body.metadata.name}"
    try:
        cleanup(body, CONFIG, deps(), _emitter(body, pipeline))
    except ServiceUnavailable as exc:
        raise kopf.TemporaryError(f"cleanup postponed: {exc}", delay=backoff(retry)) from exc
    metrics.set_phase(pipeline, None)


@kopf.on.probe(id="watch")
async def watch_alive(**_: Any) -> str:
    """Liveness: fails when the IoTPipeline watch-stream task is gone (kopf#1276: a dead watch is otherwise silent)."""
    watchers = [t for t in asyncio.all_tasks() if t.get_name().startswith("watcher for ") and PLURAL in t.get_name()]
    if not watchers or all(t.done() for t in watchers):
        raise kopf.PermanentError(f"no live watch-stream for {PLURAL}")
    metrics.HEARTBEAT.set(time.time())
    return f"{len(watchers)} watch-stream(s) alive"
