"""HTTP handlers: the range-query API (/api/v1/...), tickets, the OpenAPI document, probes, the page."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from iotcommon.errors import ServiceUnavailable
from ws_bridge import openapi
from ws_bridge.auth import allowed, presented_token
from ws_bridge.history import TooLarge
from ws_bridge.queries import QueryError, parse_query
from ws_bridge.records import row_of
from ws_bridge.state import BridgeState

STATIC_DIR = Path(__file__).parent / "static"
_NO_STORE = {"Cache-Control": "no-store"}


def state_of(request: Any) -> BridgeState:
    state: BridgeState = request.app.state.bridge
    return state


def error(status: int, code: str, detail: str, bound: str | None = None, headers: dict[str, str] | None = None
          ) -> JSONResponse:
    body: dict[str, str] = {"error": code, "detail": detail}
    if bound is not None:
        body["bound"] = bound
    return JSONResponse(body, status_code=status, headers=headers)


def _unauthorized(request: Request) -> Response | None:
    config = state_of(request).config
    token = presented_token(request.headers, request.query_params)
    if allowed(config.token, config.auth_required, token):
        return None
    return error(401, "unauthorized", "send Authorization: Bearer <token>",
                 headers={"WWW-Authenticate": 'Bearer realm="iotpipe"'})


async def index(request: Request) -> Response:
    return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: Request) -> Response:
    state = state_of(request)
    return JSONResponse({"status": "ok", "replica": state.replica, "kafka": state.live.connected,
                         "connections": len(state.sessions), "auth": state.config.auth_required})


async def readyz(request: Request) -> Response:
    """Ready when the Kafka tail has its partitions (history may still fail: HBase outages give error frames)."""
    state = state_of(request)
    ok = bool(state.live.connected)
    return JSONResponse({"ready": ok, "kafka": ok}, status_code=200 if ok else 503)


async def metrics(request: Request) -> Response:
    state = state_of(request)
    state.metrics.connections.set(len(state.sessions))
    state.metrics.subscriptions.set(state.hub.subscription_count)
    return Response(generate_latest(state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


async def openapi_document(request: Request) -> Response:
    return JSONResponse(openapi.document(state_of(request).bounds))


async def status(request: Request) -> Response:
    if (denied := _unauthorized(request)) is not None:
        return denied
    state = state_of(request)
    return JSONResponse({"replica": state.replica, "latest": state.latest(), "published": state.hub.published,
                         "connections": len(state.sessions), "subscriptions": state.hub.subscription_count})


async def ws_ticket(request: Request) -> Response:
    """A single-use ticket for ``/ws?ticket=...`` (browsers cannot send the token header on a websocket)."""
    if (denied := _unauthorized(request)) is not None:
        return denied
    state = state_of(request)
    return JSONResponse({"ticket": state.tickets.issue(), "expires_in_s": state.tickets.ttl_s}, headers=_NO_STORE)


async def sites(request: Request) -> Response:
    if (denied := _unauthorized(request)) is not None:
        return denied
    state = state_of(request)
    try:
        stored = await run_in_threadpool(state.history.sites)
    except ServiceUnavailable as exc:
        return error(503, "hbase-unavailable", str(exc))
    return JSONResponse([{"site": site, "tz": state.zones.name(site)} for site in stored])


async def range_query(request: Request) -> Response:
    if (denied := _unauthorized(request)) is not None:
        return denied
    state = state_of(request)
    try:
        query, kinds = parse_query(request.path_params["stream"], request.query_params, state.bounds)
    except QueryError as exc:
        state.metrics.refused_queries.labels(exc.bound or exc.error).inc()
        return error(exc.status, exc.error, exc.detail, exc.bound)
    state.metrics.queries.labels(query.stream, "http").inc()
    try:
        result = await run_in_threadpool(state.history.query, query)
    except ServiceUnavailable as exc:
        state.metrics.history_errors.inc()
        return error(503, "hbase-unavailable", str(exc))
    except TooLarge as exc:
        return _too_large(state, str(exc))
    rows = [row_of(r) for r in result.records if kinds is None or r.data.get("kind") in kinds]
    # ensure_ascii: a lone surrogate (an escaped one in a stored message) cannot be encoded as UTF-8
    body = json.dumps(rows, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()
    if len(body) > state.bounds.bytes:
        return _too_large(state, f"the response would be {len(body)} bytes; narrow the time range, the sites or "
                                 "the limit")
    return Response(body, media_type="application/json",
                    headers={"X-Truncated": "true" if result.truncated else "false"})


def _too_large(state: BridgeState, why: str) -> Response:
    state.metrics.refused_queries.labels("response-bytes").inc()
    return error(400, "bound-exceeded", f"{why} (bound: {state.bounds.bytes} bytes, "
                 "IOTPIPE_BRIDGE_MAX_RESPONSE_BYTES)", "response-bytes")

