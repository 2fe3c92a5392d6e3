"""Prometheus metrics of the operator (served on IOTPIPE_METRICS_PORT, /metrics)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from iot_operator.status import Outcome

RECONCILES = Counter("iotpipeline_reconcile", "reconcile passes", ["pipeline", "trigger", "result"])
RECONCILE_SECONDS = Histogram("iotpipeline_reconcile_seconds", "duration of one reconcile pass",
                              buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
PHASE = Gauge("iotpipeline_phase", "1 for the current phase of each pipeline", ["pipeline", "phase"])
ACTIONS = Counter("iotpipeline_actions", "changes made to the world (topics, tables, children)",
                  ["pipeline", "reason"])
STATUS_WRITES = Counter("iotpipeline_status_writes", "status patches sent (none when nothing changed)", ["pipeline"])
HEARTBEAT = Gauge("iotpipeline_operator_heartbeat_seconds", "unix time of the last liveness check that passed")
PHASES = ("Pending", "Provisioning", "Running", "Degraded", "Suspended", "Failed", "Deleting")


def result_of(outcome: Outcome) -> str:
    if outcome.invalid is not None:
        return "invalid"
    if outcome.conflict is not None:
        return "conflict"
    if outcome.unavailable:
        return "unavailable"
    if outcome.errors:
        return "error"
    return "ok"


def set_phase(pipeline: str, phase: str | None) -> None:
    for ph in PHASES:
        PHASE.labels(pipeline, ph).set(1 if ph == phase else 0)


def serve(host: str, port: int) -> int:
    """Start the /metrics server in a thread; returns the bound port."""
    server, _ = start_http_server(port, addr=host)
    return int(server.server_port)
