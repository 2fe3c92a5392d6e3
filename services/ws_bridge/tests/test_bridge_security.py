"""Origin check, tokens and tickets, security headers, query bounds, site zones and the OpenAPI document.

Through the real app (Starlette, auth, bounds, routing) with the FAKE live/history sources of conftest.py; the same
rules against real Kafka and HBase are fuzzed in test_bridge_fuzz.py. TestClient sends ``Host: testserver``, so the
bridge's own origin here is ``http://testserver``.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import openapi_spec_validator
import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from iotcommon.errors import ConfigError
from ws_bridge.auth import Tickets
from ws_bridge.config import BridgeConfig
from ws_bridge.origins import normalise, origin_allowed, parse_allowed_origins

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
BEARER = {"Authorization": "Bearer s3cret"}


def opened(client: TestClient, path: str = "/ws", **kwargs: Any) -> Any:
    ws = client.websocket_connect(path, **kwargs).__enter__()
    client.opened.append(ws)  # type: ignore[attr-defined]  # closed by the make_client fixture
    return ws


def hello(client: TestClient, path: str = "/ws", **kwargs: Any) -> dict[str, Any]:
    frame: dict[str, Any] = opened(client, path, **kwargs).receive_json()
    assert frame["type"] == "hello"
    return frame


def refused(client: TestClient, path: str = "/ws", **kwargs: Any) -> int:
    with pytest.raises(WebSocketDisconnect) as closed:
        opened(client, path, **kwargs)
    return closed.value.code


# --- Origin ------------------------------------------------------------------------------------------------------


def test_the_websocket_accepts_its_own_origin_and_clients_without_one(make_client) -> None:
    client = make_client()
    hello(client, headers={"Origin": "http://testserver"})
    hello(client, headers={"Origin": "HTTP://TestServer:80"})  # same origin, written differently
    hello(client)  # no Origin: not a browser page


@pytest.mark.parametrize("origin", ["https://evil.example", "http://testserver.evil.example", "null",
                                    "http://testserver:8080", "https://testserver:80", "not an origin"])
def test_a_cross_site_page_cannot_open_the_websocket(make_client, origin: str) -> None:
    client = make_client()
    assert refused(client, headers={"Origin": origin}) == 1008
    assert client.app.state.bridge.metrics.rejected_connections.labels("origin")._value.get() == 1


def test_configured_origins_are_allowed_besides_the_own_and_star_allows_any(make_client) -> None:
    listed = make_client(allowed_origins="https://dash.example.com, http://grafana.local:3000")
    hello(listed, headers={"Origin": "https://dash.example.com"})
    hello(listed, headers={"Origin": "https://dash.example.com:443"})
    hello(listed, headers={"Origin": "http://grafana.local:3000"})
    hello(listed, headers={"Origin": "http://testserver"})
    assert refused(listed, headers={"Origin": "http://dash.example.com"}) == 1008  # scheme differs
    anyone = make_client(allowed_origins="*")
    hello(anyone, headers={"Origin": "https://evil.example"})


def test_origin_rules_pure() -> None:
    assert normalise("https://Example.COM:443/") == "https://example.com"
    assert normalise("http://[::1]:8765") == "http://[::1]:8765"
    assert normalise("ftp://example.com") is None
    assert normalise("https://example.com/path") is None
    assert normalise("https://user@example.com") is None
    assert origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765", frozenset())
    assert not origin_allowed("http://localhost:8765", "127.0.0.1:8765", frozenset())
    assert not origin_allowed("http://127.0.0.1:8765", None, frozenset())
    assert parse_allowed_origins(" https://a.example ,*,") == {"https://a.example", "*"}
    with pytest.raises(ConfigError, match="IOTPIPE_BRIDGE_ALLOWED_ORIGINS"):
        parse_allowed_origins("a.example")
    with pytest.raises(ConfigError, match="IOTPIPE_BRIDGE_ALLOWED_ORIGINS"):
        BridgeConfig(allowed_origins="https://a.example/x").check()


# --- tokens and tickets ------------------------------------------------------------------------------------------


def test_a_ticket_opens_one_websocket_once(make_client) -> None:
    client = make_client(token="s3cret")
    assert client.post("/api/v1/ws-ticket").status_code == 401
    response = client.post("/api/v1/ws-ticket", headers=BEARER)
    assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["expires_in_s"] == 30 and len(body["ticket"]) > 40
    hello(client, f"/ws?ticket={body['ticket']}", headers={"Origin": "http://testserver"})
    assert refused(client, f"/ws?ticket={body['ticket']}") == 1008  # single use
    assert refused(client, "/ws?ticket=" + body["ticket"][:-1] + "0") == 1008  # forged
    assert refused(client, "/ws?access_token=s3cret") == 1008  # the token never goes in a websocket URL
    assert refused(client) == 1008
    hello(client, headers=BEARER)  # non-browser clients: the header
    # a valid ticket does not override the origin check
    ticket = client.post("/api/v1/ws-ticket", headers=BEARER).json()["ticket"]
    assert refused(client, f"/ws?ticket={ticket}", headers={"Origin": "https://evil.example"}) == 1008


def test_tickets_expire_and_replicas_sharing_the_token_accept_each_others() -> None:
    now = [1_000_000.0]
    a = Tickets("s3cret", 30, clock=lambda: now[0])
    b = Tickets("s3cret", 30, clock=lambda: now[0])
    other = Tickets("different", 30, clock=lambda: now[0])
    first, second, third = a.issue(), a.issue(), a.issue()
    assert first != second
    assert not other.redeem(first)
    assert b.redeem(first) and not b.redeem(first)
    now[0] += 30
    assert a.redeem(second)  # still valid at its expiry second
    now[0] += 1
    assert not a.redeem(third)  # expired
    for junk in ("", "x", "1.2", "²³.a.b", "9" * 40 + ".a.b", "1.a.b.c"):
        assert not a.redeem(junk)


def test_with_auth_off_no_ticket_is_needed_but_the_endpoint_still_answers(make_client) -> None:
    client = make_client()
    hello(client)
    hello(client, "/ws?ticket=anything")
    assert client.post("/api/v1/ws-ticket").json()["expires_in_s"] == 30


def test_the_http_api_takes_the_bearer_header_and_the_access_token_parameter(make_client) -> None:
    client = make_client(token="s3cret")
    assert client.get("/api/v1/status").status_code == 401
    assert client.get("/api/v1/status", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/status", headers=BEARER).status_code == 200
    assert client.get("/api/v1/status?access_token=s3cret").status_code == 200
    assert client.get("/api/v1/openapi.json").status_code == 200  # the document holds no data


# --- security headers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/static/dashboard.css", "/static/index.html", "/api/v1/openapi.json",
                                  "/static/no-such-file.js"])
def test_the_page_and_static_files_carry_the_security_headers(make_client, path: str) -> None:
    response = make_client().get(path)
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


# --- bounds and malformed parameters -----------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "bound"), [
    ({"site": ",".join(f"s{i}" for i in range(6))}, "sites"),
    ({"site": ["a", "b", "c", "d", "e", "f"]}, "sites"),
    ({"site": "s", "limit": "101"}, "limit"),
    ({"site": "s", "last": "101"}, "last"),
    ({"site": "s", "from": "2020-01-01T00:00:00Z", "to": "2020-01-11T00:00:01Z"}, "range"),
    ({"site": "s", "from": "0", "to": str(10 * 86_400_000 + 1)}, "range"),
])
def test_each_bound_is_a_400_that_names_it(make_client, openapi_check, params: dict[str, Any], bound: str) -> None:
    client = make_client(max_sites=5, history_limit=100, max_range_days=10)
    response = client.get("/api/v1/raw", params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "bound-exceeded" and response.json()["bound"] == bound
    assert bound in response.json()["detail"] or bound == "range"
    openapi_check(client.get("/api/v1/openapi.json").json(), "GET", "/api/v1/raw", response)


def test_the_response_size_bound(msg, make_client, fake_history, openapi_check) -> None:
    fake_history.add("raw", *[msg.reading("TH1", f"2020-01-01T{h:02d}:{m:02d}:00Z", seq=h * 60 + m)
                              for h in range(24) for m in range(0, 60, 5)])  # 288 rows, ~140 bytes each
    client = make_client(max_response_bytes=4096)
    response = client.get("/api/v1/raw", params={"site": "site1", "limit": "288"})
    assert response.status_code == 400 and response.json()["bound"] == "response-bytes"
    openapi_check(client.get("/api/v1/openapi.json").json(), "GET", "/api/v1/raw", response)
    small = client.get("/api/v1/raw", params={"site": "site1", "limit": "5"})
    assert small.status_code == 200 and len(small.json()) == 5


@pytest.mark.parametrize("params", [
    {"site": "s", "limit": "²"},  # str.isdigit() says yes, int() says no
    {"site": "s", "limit": "١٢"},  # Arabic-Indic digits
    {"site": "s", "last": "-1"},
    {"site": "s", "limit": "9" * 40},
    {"site": "s", "from": "10000-01-01T00:00:00Z"},
    {"site": "s", "from": "9999-12-31T23:59:59-14:00"},
    {"site": "s", "to": "99999999999999999"},
    {"site": "s", "from": "-5"},
    {"site": "s", "from": "2020-13-01T00:00:00Z"},
    {"site": "<script>"},
    {"site": "s", "sensor": "TH1\u202e"},
    {"site": "s", "kind": "AggDay"},
])
def test_malformed_parameters_are_a_400_never_a_500(make_client, openapi_check, params: dict[str, Any]) -> None:
    client = make_client()
    response = client.get("/api/v1/raw", params=params)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "bad-query"
    openapi_check(client.get("/api/v1/openapi.json").json(), "GET", "/api/v1/raw", response)


def test_websocket_history_bounds(make_client) -> None:
    ws = opened(make_client(max_sites=3))
    ws.receive_json()
    ws.send_json({"type": "subscribe", "id": "a", "stream": "raw", "sites": ["a", "b", "c", "d"], "last": 5})
    error = ws.receive_json()
    assert (error["code"], error["id"]) == ("too-many-sites", "a")
    ws.send_json({"type": "subscribe", "id": "b", "stream": "raw", "sites": ["a", "b", "c", "d"]})  # live only: fine
    assert ws.receive_json()["type"] == "subscribed"
    for since in ("9999-12-31T23:59:59-14:00", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00+14:00"):
        ws.send_json({"type": "subscribe", "id": "c", "stream": "raw", "sites": ["a"], "since": since})
        assert ws.receive_json()["code"] == "bad-message"


# --- zones and the OpenAPI document ------------------------------------------------------------------------------


def test_clients_learn_each_sites_zone(msg, make_client, fake_history, openapi_check) -> None:
    fake_history.add("raw", msg.reading(site="athens"), msg.reading(site="ny"), msg.reading(site="pune"))
    client = make_client(site_tz="Europe/Athens", site_zones="ny=America/New_York,pune=Asia/Kolkata")
    frame = hello(client)
    assert (frame["site_tz"], frame["site_zones"]) == ("Europe/Athens",
                                                       {"ny": "America/New_York", "pune": "Asia/Kolkata"})
    response = client.get("/api/v1/sites")
    assert response.json() == [{"site": "athens", "tz": "Europe/Athens"}, {"site": "ny", "tz": "America/New_York"},
                               {"site": "pune", "tz": "Asia/Kolkata"}]
    openapi_check(client.get("/api/v1/openapi.json").json(), "GET", "/api/v1/sites", response)
    with pytest.raises(ConfigError, match="IOTPIPE_SITE_ZONES"):
        BridgeConfig(site_zones="ny=Mars/Olympus").check()


def test_the_openapi_document_describes_real_answers(msg, make_client, fake_history, openapi_check) -> None:
    fake_history.add("raw", msg.reading("TH1"))
    fake_history.add("aggregates", msg.aggregate())
    fake_history.add("late", msg.late())
    fake_history.add("deadletters", msg.dead(b"\xff\xfe not utf-8"))
    client = make_client(token="s3cret")
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    openapi_spec_validator.validate(document)  # a valid OpenAPI 3.1 document (its official meta-schema)
    for schema in document["components"]["schemas"].values():
        jsonschema.Draft202012Validator.check_schema(schema)
    calls = [("GET", "/api/v1/raw", {"site": "site1"}), ("GET", "/api/v1/aggregates", {"site": "site1"}),
             ("GET", "/api/v1/late", {"site": "site1"}), ("GET", "/api/v1/deadletters", {}),
             ("GET", "/api/v1/sites", {}), ("GET", "/api/v1/status", {}), ("POST", "/api/v1/ws-ticket", {}),
             ("GET", "/healthz", {}), ("GET", "/readyz", {})]
    for method, path, params in calls:
        for headers in (BEARER, {}):
            response = client.request(method, path, params=params, headers=headers)
            if path.startswith("/api/") and not headers:
                assert response.status_code == 401
            else:
                assert response.status_code == 200, (path, response.text)
            openapi_check(document, method, path, response)
    rows = client.get("/api/v1/raw", params={"site": "site1"}, headers=BEARER).json()
    assert rows[0]["value"] == 20.5 and rows[0]["unit"] == "C"


def test_an_oversized_request_line_is_refused_by_the_http_layer(fake_history, fake_live, serve_app) -> None:
    """Under the production server settings (real uvicorn): a query string past the request-head bound is a 400."""
    import socket

    import httpx

    from ws_bridge.app import create_app
    from ws_bridge.server import MAX_REQUEST_HEAD_BYTES

    config = BridgeConfig(port=0, heartbeat_s=3600.0)
    port = serve_app(create_app(config, history=fake_history, live=fake_live), config)
    with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:  # httpx refuses such URLs itself
        raw.sendall(b"GET /api/v1/raw?site=s&sensor=" + b"x" * MAX_REQUEST_HEAD_BYTES + b" HTTP/1.1\r\nHost: t\r\n\r\n")
        assert raw.makefile("rb").readline().startswith(b"HTTP/1.1 400 ")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
        assert http.get("/api/v1/raw", params={"site": "site1"}).status_code == 200  # and it still serves
