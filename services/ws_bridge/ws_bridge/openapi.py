"""Pure: the OpenAPI 3.1 document of the bridge's HTTP API, served at ``/api/v1/openapi.json``.

Built from the same tables the code uses (streams, row fields, sensors, kinds, the configured bounds), so it cannot
drift from what the bridge answers; the tests check real responses against it.
"""

from __future__ import annotations

from typing import Any

from iotcommon.sensors import AGGREGATE_KINDS, SENSORS
from ws_bridge.queries import DEFAULT_LIMIT, Bounds
from ws_bridge.records import MAX_MS, ROW_FIELDS, STREAMS

ERRORS = ("bad-query", "bound-exceeded", "not-found", "unauthorized", "hbase-unavailable")
BOUNDS = ("sites", "limit", "last", "range", "response-bytes")

_ROW_NAMES = {"raw": "RawRow", "late": "LateRow", "aggregates": "AggregateRow", "deadletters": "DeadLetterRow"}
_STREAM_TEXT = {
    "raw": "raw readings (reading.v1) of the sites asked for",
    "late": "readings rejected as too late (late.v1)",
    "aggregates": "daily aggregates (aggregate.v1); `time` is the window end, `day` the site's local day",
    "deadletters": "dead letters (deadletter.v1); `payload` is the original bytes as UTF-8 text",
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _row_schema(stream: str) -> dict[str, Any]:
    fields = ROW_FIELDS[stream]
    props: dict[str, Any] = {"time": {"type": "integer", "description": "event time, epoch milliseconds"}}
    props.update({name: {"type": [kind, "null"]} for name, kind in fields.items()})
    return {"type": "object", "additionalProperties": False, "required": ["time", *fields], "properties": props}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref("Error")}}}


def _list_param(name: str, description: str, items: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "description": description, "style": "form",
            "explode": True, "schema": {"type": "array", "items": items}}


def _range_operation(stream: str, bounds: Bounds) -> dict[str, Any]:
    instant = {"description": "epoch milliseconds (0 .. MAX) or an RFC 3339 instant",
               "oneOf": [{"type": "string", "pattern": "^-?[0-9]{1,19}$"}, {"type": "string", "format": "date-time"}]}
    params = [
        _list_param("site", f"site ids (repeat or comma-separate; at most {bounds.sites})"
                    + ("" if stream == "deadletters" else "; required"),
                    {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.,-]*$"}, required=stream != "deadletters"),
        _list_param("sensor", "sensors (default: every sensor)", {"type": "string", "enum": list(SENSORS)}),
        {"name": "from", "in": "query", "description": f"inclusive start; epoch ms up to {MAX_MS}",
         "schema": instant},
        {"name": "to", "in": "query", "description": f"inclusive end; at most {bounds.range_ms // 86_400_000} days "
         "after `from`", "schema": instant},
        {"name": "last", "in": "query", "description": "the newest N rows of each series (the default, N = limit, "
         "when neither from nor to is given)", "schema": {"type": "integer", "minimum": 1, "maximum": bounds.limit}},
        {"name": "limit", "in": "query", "description": "most rows; the newest are kept",
         "schema": {"type": "integer", "minimum": 1, "maximum": bounds.limit, "default": DEFAULT_LIMIT}},
        {"name": "access_token", "in": "query", "description": "the bearer token, for clients that cannot set "
         "headers (the URL ends up in access logs: prefer the Authorization header)", "schema": {"type": "string"}},
    ]
    if stream == "aggregates":
        params.insert(2, _list_param("kind", "aggregate kinds", {"type": "string", "enum": list(AGGREGATE_KINDS)}))
    return {
        "operationId": f"query_{stream}",
        "summary": f"Range query: {_STREAM_TEXT[stream]}",
        "parameters": params,
        "responses": {
            "200": {"description": "rows in event-time order",
                    "headers": {"X-Truncated": {"description": "true when rows were left out by the limit or a "
                                                               "scan cap", "schema": {"enum": ["true", "false"]}}},
                    "content": {"application/json": {"schema": {"type": "array",
                                                                "items": _ref(_ROW_NAMES[stream])}}}},
            "400": _error("a malformed parameter (bad-query) or one beyond a bound (bound-exceeded, naming it)"),
            "401": _error("the bearer token is missing or wrong"),
            "503": _error("HBase cannot be read"),
        },
    }


def _simple(operation_id: str, summary: str, schema: dict[str, Any], *, authenticated: bool = True,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}
    if authenticated:
        responses["401"] = _error("the bearer token is missing or wrong")
    responses.update(extra or {})
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "responses": responses}
    if not authenticated:
        op["security"] = []
    return op


def document(bounds: Bounds) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a bridge with these bounds."""
    paths: dict[str, Any] = {f"/api/v1/{stream}": {"get": _range_operation(stream, bounds)} for stream in STREAMS}
    paths["/api/v1/sites"] = {"get": _simple(
        "sites", "Sites stored in HBase, each with its time zone (IOTPIPE_SITE_TZ / IOTPIPE_SITE_ZONES)",
        {"type": "array", "items": _ref("Site")}, extra={"503": _error("HBase cannot be read")})}
    paths["/api/v1/status"] = {"get": _simple("status", "Newest simulated time seen live per stream, counters",
                                              _ref("Status"))}
    paths["/api/v1/ws-ticket"] = {"post": _simple(
        "ws_ticket", "A single-use ticket for /ws?ticket=..., valid expires_in_s seconds", _ref("Ticket"))}
    paths["/api/v1/openapi.json"] = {"get": _simple("openapi", "This document", {"type": "object"},
                                                    authenticated=False)}
    paths["/healthz"] = {"get": _simple("healthz", "Liveness", _ref("Health"), authenticated=False)}
    paths["/readyz"] = {"get": _simple("readyz", "Readiness: the Kafka tail has its partitions", _ref("Ready"),
                                       authenticated=False,
                                       extra={"503": {"description": "not ready",
                                                      "content": {"application/json": {"schema": _ref("Ready")}}}})}
    schemas: dict[str, Any] = {name: _row_schema(stream) for stream, name in _ROW_NAMES.items()}
    schemas.update({
        "Error": {"type": "object", "additionalProperties": False, "required": ["error", "detail"],
                  "properties": {"error": {"enum": list(ERRORS)}, "detail": {"type": "string"},
                                 "bound": {"enum": list(BOUNDS), "description": "which bound (bound-exceeded)"}}},
        "Site": {"type": "object", "additionalProperties": False, "required": ["site", "tz"],
                 "properties": {"site": {"type": "string"}, "tz": {"type": "string", "description": "IANA zone"}}},
        "Status": {"type": "object", "additionalProperties": False,
                   "required": ["replica", "latest", "published", "connections", "subscriptions"],
                   "properties": {"replica": {"type": "string"},
                                  "latest": {"type": "object", "additionalProperties": {"type": "string"}},
                                  "published": {"type": "integer"}, "connections": {"type": "integer"},
                                  "subscriptions": {"type": "integer"}}},
        "Ticket": {"type": "object", "additionalProperties": False, "required": ["ticket", "expires_in_s"],
                   "properties": {"ticket": {"type": "string"}, "expires_in_s": {"type": "integer", "minimum": 1}}},
        "Health": {"type": "object", "additionalProperties": False,
                   "required": ["status", "replica", "kafka", "connections", "auth"],
                   "properties": {"status": {"const": "ok"}, "replica": {"type": "string"},
                                  "kafka": {"type": "boolean"}, "connections": {"type": "integer"},
                                  "auth": {"type": "boolean"}}},
        "Ready": {"type": "object", "additionalProperties": False, "required": ["ready", "kafka"],
                  "properties": {"ready": {"type": "boolean"}, "kafka": {"type": "boolean"}}},
    })
    return {
        "openapi": "3.1.0",
        "info": {"title": "iotpipe bridge HTTP API", "version": "1",
                 "description": "Range queries over the pipeline's HBase tables, shaped for Grafana's Infinity "
                                "plugin. The websocket protocol (/ws) is described in docs/bridge-protocol.md."},
        "paths": paths,
        "components": {"schemas": schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                                      "description": "IOTPIPE_BRIDGE_TOKEN, when auth is on"}}},
        "security": [{"bearer": []}],
    }
