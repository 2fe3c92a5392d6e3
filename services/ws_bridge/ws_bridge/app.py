"""The Starlette app: websocket API at /ws, HTTP JSON API at /api/v1/..., /healthz, /metrics, dashboard at /."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from iotcommon.errors import ServiceUnavailable
from iotcommon.topics import Topics
from ws_bridge import protocol
from ws_bridge.auth import allowed, presented_token
from ws_bridge.config import BridgeConfig
from ws_bridge.history import HBaseHistory, HistorySource, Query, Result
from ws_bridge.hub import Close, Hub, Session, Subscription
from ws_bridge.metrics import Metrics
from ws_bridge.protocol import ProtocolError, Subscribe
from ws_bridge.queries import QueryError, parse_query
from ws_bridge.records import Record, ms_to_iso, row_of
from ws_bridge.tail import KafkaTail

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
HISTORY_CHUNK = 1000
MAX_BAD_MESSAGES = 20


class LiveSource(Protocol):
    """Where live records come from (KafkaTail; a fake in protocol unit tests)."""

    connected: bool

    def start(self, deliver: Callable[[list[Record]], None]) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


@dataclass
class BridgeState:
    config: BridgeConfig
    hub: Hub
    history: HistorySource
    live: LiveSource
    metrics: Metrics
    replica: str
    sessions: set[Session] = field(default_factory=set)
    started: float = field(default_factory=time.time)


def create_app(config: BridgeConfig, *, history: HistorySource | None = None, live: LiveSource | None = None,
               hub: Hub | None = None) -> Starlette:
    """Build the app. ``history``/``live`` default to HBase and the Kafka tail of ``config``."""
    config.check()
    metrics = Metrics()
    if live is None:
        live = KafkaTail(config.kafka_bootstrap, Topics(config.topic_prefix), group_id=config.consumer_group,
                         batch_wait_ms=config.batch_wait_ms,
                         on_bad=lambda stream, _exc: metrics.bad_records.labels(stream).inc())
    state = BridgeState(
        config=config,
        hub=hub or Hub(),
        history=history or HBaseHistory(config.hbase_host, config.hbase_port, config.table_prefix, config.site_tz),
        live=live,
        metrics=metrics,
        replica=f"{socket.gethostname()}:{config.port}",
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()

        def deliver(batch: list[Record]) -> None:
            loop.call_soon_threadsafe(_publish, state, batch)

        state.live.start(deliver)
        beats = asyncio.create_task(_heartbeats(state), name="heartbeats")
        log.info("bridge ready: replica %s, auth %s", state.replica, "on" if config.auth_required else "off")
        try:
            yield {"bridge": state}
        finally:
            beats.cancel()
            for session in list(state.sessions):
                session.close_after_queued(1001, "server shutting down")
            await run_in_threadpool(state.live.stop)
            state.history.close()

    routes = [
        Route("/", _index),
        Route("/healthz", _healthz),
        Route("/readyz", _readyz),
        Route("/metrics", _metrics),
        Route("/api/v1/status", _status),
        Route("/api/v1/sites", _sites),
        Route("/api/v1/{stream}", _range_query),
        WebSocketRoute("/ws", _websocket),
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.bridge = state
    return app


def _state(conn: Request | WebSocket) -> BridgeState:
    state: BridgeState = conn.app.state.bridge
    return state


def _publish(state: BridgeState, batch: list[Record]) -> None:
    for stream, count in collections.Counter(r.stream for r in batch).items():
        state.metrics.records_in.labels(stream).inc(count)
    before = sum(s.dropped_total for s in state.sessions)
    state.hub.publish(batch)
    dropped = sum(s.dropped_total for s in state.sessions) - before
    if dropped:
        state.metrics.records_dropped.inc(dropped)


def _latest(state: BridgeState) -> dict[str, str]:
    return {stream: ms_to_iso(ms) for stream, ms in state.hub.latest_ms.items()}


async def _heartbeats(state: BridgeState) -> None:
    while True:
        await asyncio.sleep(state.config.heartbeat_s)
        frame = protocol.heartbeat(ms_to_iso(int(time.time() * 1000)), _latest(state))
        for session in list(state.sessions):
            session.offer(frame)


# --- HTTP ----------------------------------------------------------------------------------------------------------


def _unauthorized(request: Request) -> Response | None:
    config = _state(request).config
    token = presented_token(request.headers, request.query_params)
    if allowed(config.token, config.auth_required, token):
        return None
    return JSONResponse({"error": "unauthorized", "detail": "send Authorization: Bearer <token>"}, status_code=401,
                        headers={"WWW-Authenticate": 'Bearer realm="iotpipe"'})


async def _index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def _healthz(request: Request) -> Response:
    state = _state(request)
    return JSONResponse({"status": "ok", "replica": state.replica, "kafka": state.live.connected,
                         "connections": len(state.sessions), "auth": state.config.auth_required})


async def _readyz(request: Request) -> Response:
    """Ready when the Kafka tail has its partitions (history may still fail: HBase outages give error frames)."""
    state = _state(request)
    ok = bool(state.live.connected)
    return JSONResponse({"ready": ok, "kafka": ok}, status_code=200 if ok else 503)


async def _metrics(request: Request) -> Response:
    state = _state(request)
    state.metrics.connections.set(len(state.sessions))
    state.metrics.subscriptions.set(state.hub.subscription_count)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def _status(request: Request) -> Response:
    if (denied := _unauthorized(request)) is not None:
        return denied
    state = _state(request)
    return JSONResponse({"replica": state.replica, "latest": _latest(state), "published": state.hub.published,
                         "connections": len(state.sessions), "subscriptions": state.hub.subscription_count})


async def _sites(request: Request) -> Response:
    if (denied := _unauthorized(request)) is not None:
        return denied
    state = _state(request)
    try:
        stored = await run_in_threadpool(state.history.sites)
    except ServiceUnavailable as exc:
        return JSONResponse({"error": "hbase-unavailable", "detail": str(exc)}, status_code=503)
    return JSONResponse([{"site": site} for site in stored])


async def _range_query(request: Request) -> Response:
    if (denied := _unauthorized(request)) is not None:
        return denied
    state = _state(request)
    try:
        query, kinds = parse_query(request.path_params["stream"], request.query_params, state.config.history_limit)
    except QueryError as exc:
        return JSONResponse({"error": "bad-query", "detail": str(exc)}, status_code=exc.status)
    state.metrics.queries.labels(query.stream, "http").inc()
    try:
        result = await run_in_threadpool(state.history.query, query)
    except ServiceUnavailable as exc:
        state.metrics.history_errors.inc()
        return JSONResponse({"error": "hbase-unavailable", "detail": str(exc)}, status_code=503)
    rows = [row_of(r) for r in result.records if kinds is None or r.data.get("kind") in kinds]
    headers = {"X-Truncated": "true" if result.truncated else "false"}
    return JSONResponse(rows, headers=headers)


# --- websocket -----------------------------------------------------------------------------------------------------


async def _websocket(websocket: WebSocket) -> None:
    state = _state(websocket)
    config = state.config
    if not allowed(config.token, config.auth_required, presented_token(websocket.headers, websocket.query_params)):
        state.metrics.rejected_connections.labels("unauthorized").inc()
        await websocket.close(code=1008, reason="unauthorized: bearer token required")
        return
    await websocket.accept()
    if len(state.sessions) >= config.max_connections:
        state.metrics.rejected_connections.labels("limit").inc()
        await websocket.send_text(protocol.error("too-many-connections",
                                                 f"this bridge serves at most {config.max_connections} connections"))
        await websocket.close(code=1013, reason="too many connections")
        return
    session = Session(config.queue_records)
    state.sessions.add(session)
    session.offer(protocol.hello(state.replica, config.heartbeat_s, config.queue_records, config.max_subscriptions,
                                 config.site_tz))
    tasks: set[asyncio.Task[None]] = set()
    writer = asyncio.create_task(_writer(state, websocket, session))
    reader = asyncio.create_task(_reader(state, websocket, session, tasks))
    try:
        await asyncio.wait({writer, reader}, return_when=asyncio.FIRST_COMPLETED)
        if session.closing and not writer.done():
            await asyncio.wait({writer}, timeout=config.send_timeout_s)  # the error frame, then the close code
    finally:
        for task in (writer, reader, *tasks):
            task.cancel()
        state.hub.drop_session(session)
        state.sessions.discard(session)
        with contextlib.suppress(Exception):  # a stuck peer cannot take a close frame either: don't wait for it
            await asyncio.wait_for(websocket.close(1008 if session.too_slow else 1000,
                                                   "client too slow" if session.too_slow else ""), 1.0)


async def _writer(state: BridgeState, websocket: WebSocket, session: Session) -> None:
    timeout = state.config.send_timeout_s
    while True:
        item = await session.next_frame()
        if isinstance(item, Close):
            await asyncio.wait_for(websocket.close(item.code, item.reason), timeout)
            return
        frame, records = item
        try:
            async with asyncio.timeout(timeout):  # cheaper than wait_for: no task per frame
                await websocket.send_text(frame)
        except TimeoutError:
            session.too_slow = True
            state.metrics.slow_clients_closed.inc()
            log.warning("closing a client that accepted nothing for %.1f s", timeout)
            return
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        state.metrics.frames_sent.inc()
        if records:
            state.metrics.records_sent.inc(records)


async def _reader(state: BridgeState, websocket: WebSocket, session: Session, tasks: set[asyncio.Task[None]]) -> None:
    bad = 0
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is None:
            state.metrics.bad_client_messages.labels("binary").inc()
            session.offer(protocol.error("binary", "binary frames are not part of the protocol; send JSON text"))
            session.close_after_queued(1003, "unsupported data: binary frame")
            return
        try:
            _handle(state, session, protocol.parse(text), tasks)
        except ProtocolError as exc:
            bad += 1
            state.metrics.bad_client_messages.labels(exc.code).inc()
            session.offer(protocol.error(exc.code, exc.detail, exc.sub_id))
            if exc.code == "too-large":
                session.close_after_queued(1009, "message too big")
                return
            if bad >= MAX_BAD_MESSAGES:
                session.close_after_queued(1003, f"{MAX_BAD_MESSAGES} unusable messages")
                return


def _handle(state: BridgeState, session: Session, message: protocol.ClientMessage,
            tasks: set[asyncio.Task[None]]) -> None:
    if isinstance(message, protocol.Ping):
        session.offer(protocol.pong(message.id))
        return
    if isinstance(message, protocol.Unsubscribe):
        if not state.hub.unsubscribe(session, message.id):
            raise ProtocolError("unknown-id", f"no subscription {message.id!r}", message.id)
        session.offer(protocol.unsubscribed(message.id))
        return
    if message.id in session.subscriptions:
        raise ProtocolError("duplicate-id", f"subscription {message.id!r} exists; unsubscribe first", message.id)
    if len(session.subscriptions) >= state.config.max_subscriptions:
        raise ProtocolError("too-many-subscriptions",
                            f"at most {state.config.max_subscriptions} subscriptions per connection", message.id)
    entry = state.hub.subscribe(session, message)
    session.offer(protocol.subscribed(message))
    if message.wants_history:
        task = asyncio.create_task(_history_then_live(state, session, entry))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _history_then_live(state: BridgeState, session: Session, entry: Subscription) -> None:
    sub: Subscribe = entry.sub
    limit = min(sub.limit or state.config.history_limit, state.config.history_limit)
    query = Query(sub.stream, tuple(sorted(sub.filter.sites or ())),
                  tuple(sorted(sub.filter.sensors)) if sub.filter.sensors is not None else None,
                  from_ms=sub.since_ms, last=sub.last, limit=limit)
    state.metrics.queries.labels(sub.stream, "ws").inc()
    try:
        result = await run_in_threadpool(state.history.query, query)
    except ServiceUnavailable as exc:
        state.metrics.history_errors.inc()
        session.offer(protocol.error("history-unavailable", str(exc), sub.id))
        result = Result([], False)
    if session.subscriptions.get(sub.id) is not entry:
        return  # unsubscribed meanwhile
    records = result.records
    for start in range(0, len(records), HISTORY_CHUNK):
        chunk = records[start:start + HISTORY_CHUNK]
        session.offer(protocol.data(sub.id, sub.stream, "history", [r.item for r in chunk]), len(chunk))
    seen = {r.ident for r in records}
    buffered = state.hub.go_live(entry)
    session.offer(protocol.history_end(sub.id, len(records), result.truncated))
    session.note_dropped(entry.buffer_dropped)
    live = [r for r in buffered if r.ident not in seen]
    if live:
        session.offer(protocol.data(sub.id, sub.stream, "live", [r.item for r in live]), len(live))
