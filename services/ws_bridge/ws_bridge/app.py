"""The Starlette app: websocket API at /ws, HTTP JSON API at /api/v1/..., /healthz, /metrics, dashboard at /.

Handlers: ``ws_bridge.ws`` (the websocket), ``ws_bridge.http_api`` (everything else). Every HTTP response carries
the security headers below (a strict Content-Security-Policy: the page has no inline script or style).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from iotcommon.days import ms_to_ts
from iotcommon.errors import MessageError
from ws_bridge import http_api, protocol
from ws_bridge.auth import Tickets
from ws_bridge.config import BridgeConfig
from ws_bridge.history import HBaseHistory, HistorySource
from ws_bridge.hub import Hub
from ws_bridge.lazy import Live
from ws_bridge.live import live_source
from ws_bridge.metrics import Metrics
from ws_bridge.state import BridgeState, LiveSource, bounds_of
from ws_bridge.ws import websocket_endpoint

log = logging.getLogger(__name__)

CONTENT_SECURITY_POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                           "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
                           "frame-ancestors 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SecurityHeaders:
    """ASGI middleware: adds ``SECURITY_HEADERS`` to every HTTP response (the page, static files and the API)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(config: BridgeConfig, *, history: HistorySource | None = None, live: LiveSource | None = None,
               hub: Hub | None = None) -> Starlette:
    """Build the app. ``history``/``live`` default to HBase and the Kafka tail of ``config``."""
    config.check()
    metrics = Metrics()
    zones = config.zones
    def on_bad(stream: str, _exc: MessageError) -> None:
        metrics.bad_records.labels(stream).inc()

    if live is None:
        live = live_source(config, on_bad=on_bad)
    def on_bad_later(stream: str, exc: MessageError) -> None:  # a raw reading decoded when a client asked for it
        log.warning("skipping a %s record, decoded on demand: %s", stream, exc)
        on_bad(stream, exc)

    hub = hub or Hub()
    hub.on_bad = on_bad_later
    state = BridgeState(
        config=config,
        hub=hub,
        history=history or HBaseHistory(config.hbase_host, config.hbase_port, config.table_prefix, zones),
        live=live,
        metrics=metrics,
        replica=f"{socket.gethostname()}:{config.port}",
        zones=zones,
        origins=config.origins,
        tickets=Tickets(config.token, config.ticket_ttl_s),
        bounds=bounds_of(config),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()

        def deliver(batch: list[Live]) -> None:
            loop.call_soon_threadsafe(_publish, state, batch)

        def remember(batch: list[Live]) -> None:
            loop.call_soon_threadsafe(state.hub.remember, batch)

        state.live.start(deliver, remember)
        beats = asyncio.create_task(_heartbeats(state), name="heartbeats")
        log.info("bridge ready: replica %s, auth %s, origins: own%s", state.replica,
                 "on" if config.auth_required else "off", "".join(f", {o}" for o in sorted(state.origins)))
        try:
            yield {"bridge": state}
        finally:
            beats.cancel()
            for session in list(state.sessions):
                session.close_after_queued(1001, "server shutting down")
            await run_in_threadpool(state.live.stop)
            state.history.close()

    routes = [
        Route("/", http_api.index),
        Route("/healthz", http_api.healthz),
        Route("/readyz", http_api.readyz),
        Route("/metrics", http_api.metrics),
        Route("/api/v1/openapi.json", http_api.openapi_document),
        Route("/api/v1/status", http_api.status),
        Route("/api/v1/sites", http_api.sites),
        Route("/api/v1/ws-ticket", http_api.ws_ticket, methods=["POST"]),
        Route("/api/v1/{stream}", http_api.range_query),
        WebSocketRoute("/ws", websocket_endpoint),
        Mount("/static", StaticFiles(directory=http_api.STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, middleware=[Middleware(SecurityHeaders)])
    app.state.bridge = state
    return app


def _publish(state: BridgeState, batch: list[Live]) -> None:
    for stream, count in collections.Counter(r.stream for r in batch).items():
        state.metrics.records_in.labels(stream).inc(count)
    before = sum(s.dropped_total for s in state.sessions)
    state.hub.publish(batch)
    dropped = sum(s.dropped_total for s in state.sessions) - before
    if dropped:
        state.metrics.records_dropped.inc(dropped)


async def _heartbeats(state: BridgeState) -> None:
    while True:
        await asyncio.sleep(state.config.heartbeat_s)
        frame = protocol.heartbeat(ms_to_ts(int(time.time() * 1000)), state.latest())
        for session in list(state.sessions):
            session.offer(frame)
