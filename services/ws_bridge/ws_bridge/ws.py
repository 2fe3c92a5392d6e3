"""The websocket endpoint /ws: handshake checks (Origin, token or ticket), then one reader and one writer task."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from iotcommon.errors import ServiceUnavailable
from ws_bridge import protocol
from ws_bridge.auth import allowed, bearer_token
from ws_bridge.history import Result, TooLarge
from ws_bridge.hub import Close, Session, Subscription
from ws_bridge.origins import origin_allowed
from ws_bridge.protocol import ProtocolError, Subscribe
from ws_bridge.queries import Query
from ws_bridge.state import BridgeState

log = logging.getLogger(__name__)

HISTORY_CHUNK = 1000
MAX_BAD_MESSAGES = 20


def _refusal(state: BridgeState, websocket: WebSocket) -> tuple[str, str] | None:
    """(metric reason, close reason) when the handshake must be refused, else None."""
    config = state.config
    if not origin_allowed(websocket.headers.get("origin"), websocket.headers.get("host"), state.origins):
        return "origin", "origin not allowed (IOTPIPE_BRIDGE_ALLOWED_ORIGINS)"
    if not config.auth_required:
        return None
    if allowed(config.token, True, bearer_token(websocket.headers)):
        return None
    ticket = websocket.query_params.get("ticket")
    if ticket and state.tickets.redeem(ticket):
        return None
    return "unauthorized", "unauthorized: a ticket (POST /api/v1/ws-ticket) or a bearer token is required"


async def websocket_endpoint(websocket: WebSocket) -> None:
    state: BridgeState = websocket.app.state.bridge
    config = state.config
    if (refused := _refusal(state, websocket)) is not None:
        state.metrics.rejected_connections.labels(refused[0]).inc()
        await websocket.close(code=1008, reason=refused[1])
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
                                 state.zones.default, state.zones.overrides))
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
    sites = message.filter.sites
    if message.wants_history and sites is not None and len(sites) > state.bounds.sites:
        raise ProtocolError("too-many-sites", f"history for {len(sites)} sites, over the bound {state.bounds.sites} "
                            "(IOTPIPE_BRIDGE_MAX_SITES); split the subscription", message.id)
    entry = state.hub.subscribe(session, message)
    session.offer(protocol.subscribed(message))
    if message.wants_history:
        task = asyncio.create_task(_history_then_live(state, session, entry))
        tasks.add(task)
        task.add_done_callback(tasks.discard)


async def _history_then_live(state: BridgeState, session: Session, entry: Subscription) -> None:
    sub: Subscribe = entry.sub
    bounds = state.bounds
    limit = min(sub.limit or bounds.limit, bounds.limit)
    query = Query(sub.stream, tuple(sorted(sub.filter.sites or ())),
                  tuple(sorted(sub.filter.sensors)) if sub.filter.sensors is not None else None,
                  from_ms=sub.since_ms, last=sub.last, limit=limit, max_bytes=bounds.bytes,
                  scan_cap=bounds.deadletter_scan)
    state.metrics.queries.labels(sub.stream, "ws").inc()
    try:
        result = await run_in_threadpool(state.history.query, query)
    except ServiceUnavailable as exc:
        state.metrics.history_errors.inc()
        session.offer(protocol.error("history-unavailable", str(exc), sub.id))
        result = Result([], False)
    except TooLarge as exc:
        session.offer(protocol.error("history-too-large", f"{exc} (IOTPIPE_BRIDGE_MAX_RESPONSE_BYTES)", sub.id))
        result = Result([], True)
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
