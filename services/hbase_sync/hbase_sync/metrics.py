"""Prometheus metrics of the worker and the small HTTP server for /metrics, /healthz and /readyz."""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger("hbase_sync.http")


class SyncMetrics:
    """The worker's metrics, in their own registry (several workers can live in one test process)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.consumed = Counter("iotpipe_sync_consumed", "Kafka records consumed", ["topic"], registry=r)
        self.written = Counter("iotpipe_sync_written", "rows written to HBase", ["table"], registry=r)
        self.batches = Counter("iotpipe_sync_batches", "batches written and committed", registry=r)
        self.batch_rows = Histogram("iotpipe_sync_batch_rows", "rows per written batch", registry=r,
                                    buckets=(1, 10, 100, 500, 1000, 2000, 5000, 10000, 50000))
        self.batch_seconds = Histogram("iotpipe_sync_batch_seconds", "time to write one batch to HBase", registry=r)
        self.stale = Counter("iotpipe_sync_stale_aggregates", "aggregate revisions not written: a higher or equal "
                             "revision was already stored", registry=r)
        self.deadletters = Counter("iotpipe_sync_rejected", "records this worker could not map (sent to the "
                                   "deadletters table)", ["reason"], registry=r)
        self.errors = Counter("iotpipe_sync_errors", "errors by kind", ["kind"], registry=r)
        self.lag = Gauge("iotpipe_sync_lag", "records behind the end of the partition (committed offset)",
                         ["topic", "partition"], registry=r)
        self.paused = Gauge("iotpipe_sync_paused", "1 while consumption is paused because HBase is unavailable",
                            registry=r)
        self.hbase_up = Gauge("iotpipe_sync_hbase_up", "1 if the last HBase call succeeded", registry=r)
        self.assigned = Gauge("iotpipe_sync_assigned_partitions", "partitions assigned to this worker", registry=r)
        self.group_state = "not reported yet"  # librdkafka's view of the group (cgrp of its statistics)
        self.recreated = Counter("iotpipe_sync_consumer_recreated", "consumers closed and made anew because none "
                                 "was let into the group within IOTPIPE_SYNC_JOIN_TIMEOUT_S", registry=r)

    def observe_stats(self, stats_json: str) -> None:
        """librdkafka statistics (statistics.interval.ms) -> the lag gauge, and the group's state for the logs."""
        try:
            stats = json.loads(stats_json)
        except ValueError:
            return
        cgrp = stats.get("cgrp") or {}
        self.group_state = ", ".join(f"{k} {cgrp[k]}" for k in ("state", "join_state", "rebalance_reason",
                                                                   "assignment_size") if k in cgrp)  # fmt: skip
        for topic, tdata in stats.get("topics", {}).items():
            for part, pdata in tdata.get("partitions", {}).items():
                lag = pdata.get("consumer_lag", -1)
                if part != "-1" and isinstance(lag, int) and lag >= 0:
                    self.lag.labels(topic, part).set(lag)


@dataclass
class Health:
    """What /healthz and /readyz report. The worker updates it; the HTTP thread reads it."""

    last_loop_at: float = field(default_factory=time.monotonic)
    state: str = "starting"  # starting | running | paused (HBase unavailable) | stopping
    detail: str = ""
    stuck_after_s: float = 120.0

    def tick(self, state: str | None = None, detail: str | None = None) -> None:
        self.last_loop_at = time.monotonic()
        if state is not None:
            self.state = state
        if detail is not None:
            self.detail = detail

    def snapshot(self) -> dict[str, Any]:
        age = time.monotonic() - self.last_loop_at
        return {"state": self.state, "detail": self.detail, "loop_age_s": round(age, 1),
                "alive": age < self.stuck_after_s, "ready": self.state == "running"}


def serve(host: str, port: int, metrics: SyncMetrics, health: Health) -> ThreadingHTTPServer:
    """Start the HTTP server in a daemon thread. /healthz: 200 while the loop turns (liveness; an HBase outage is
    handled by the worker, a restart would not help); /readyz: 200 only while running; /metrics: Prometheus text."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            elif path in ("/healthz", "/readyz"):
                snap = health.snapshot()
                ok = snap["alive"] if path == "/healthz" else snap["ready"]
                self._send(200 if ok else 503, "application/json", json.dumps(snap).encode() + b"\n")
            else:
                self._send(404, "text/plain", b"not found: try /healthz, /readyz or /metrics\n")

        def _send(self, code: int, ctype: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.client_address[0], *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, name="sync-http", daemon=True)
    thread.start()
    return server


def stop_server(server: ThreadingHTTPServer) -> None:
    server.shutdown()
    server.server_close()
