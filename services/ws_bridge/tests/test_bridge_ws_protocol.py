"""The websocket protocol, end to end through the real app, with FAKE live/history sources (conftest.py).

What is fake: the Kafka tail (records are pushed by the test) and HBase (an in-memory list). What is real: the
Starlette app, hub, sessions, protocol and auth. Real Kafka/HBase: test_bridge_live_kafka.py, test_bridge_http_hbase.py.
"""

from __future__ import annotations

import base64
import json
import threading
from importlib import resources
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient, WebSocketTestSession
from starlette.websockets import WebSocketDisconnect

SERVER_SCHEMA = json.loads(resources.files("ws_bridge").joinpath("schemas", "server.v1.json").read_text())
CLIENT_SCHEMA = json.loads(resources.files("ws_bridge").joinpath("schemas", "client.v1.json").read_text())


def receive(ws: WebSocketTestSession) -> dict[str, Any]:
    frame: dict[str, Any] = ws.receive_json()
    jsonschema.validate(frame, SERVER_SCHEMA)
    return frame


def send(ws: WebSocketTestSession, message: dict[str, Any]) -> None:
    jsonschema.validate(message, CLIENT_SCHEMA)
    ws.send_json(message)


def opened(client: TestClient, path: str = "/ws", **kwargs: Any) -> WebSocketTestSession:
    ws = client.websocket_connect(path, **kwargs).__enter__()
    client.opened.append(ws)  # type: ignore[attr-defined]  # closed by the make_client fixture
    return ws


def connect(client: TestClient, path: str = "/ws", **kwargs: Any) -> WebSocketTestSession:
    ws = opened(client, path, **kwargs)
    hello = receive(ws)
    assert hello["type"] == "hello" and hello["protocol"] == 1
    return ws


def subscribe(ws: WebSocketTestSession, **fields: Any) -> dict[str, Any]:
    send(ws, {"type": "subscribe", **fields})
    ack = receive(ws)
    assert ack == {"type": "subscribed", "id": fields["id"], "stream": fields["stream"],
                   "history": "since" in fields or "last" in fields}
    return ack


def values(frame: dict[str, Any]) -> list[Any]:
    return [(r["data"].get("name") or r["data"].get("sensor"), r["data"].get("value")) for r in frame["records"]]


def test_live_records_reach_a_subscriber_with_filters(msg, make_client, fake_live) -> None:
    client = make_client()
    ws = connect(client)
    subscribe(ws, id="th", stream="raw", sites=["site1"], sensors=["TH1", "TH2"])
    fake_live.push("raw", msg.reading("TH1", value=1.0), msg.reading("HVAC1", value=2.0), msg.reading("TH2", value=3.0),
                   msg.reading("TH1", value=4.0, site="site2"))
    frame = receive(ws)
    assert frame["type"] == "data" and frame["id"] == "th" and frame["phase"] == "live"
    assert values(frame) == [("TH1", 1.0), ("TH2", 3.0)]
    assert all(r["kafka_ts"] == 1_700_000_000_000 for r in frame["records"])


def test_streams_are_separate_and_unfiltered_subscriptions_see_every_site(msg, make_client, fake_live) -> None:
    ws = connect(make_client())
    subscribe(ws, id="all-agg", stream="aggregates")
    fake_live.push("raw", msg.reading("TH1"))
    fake_live.push("aggregates", msg.aggregate("AggDay[TH1]", site="a"), msg.aggregate("AggDayDiff[Etot]", site="b"))
    frame = receive(ws)
    assert frame["stream"] == "aggregates"
    assert values(frame) == [("AggDay[TH1]", 21.0), ("AggDayDiff[Etot]", 21.0)]


def test_history_first_then_live_without_duplicates(msg, make_client, fake_live, fake_history) -> None:
    fake_history.add("raw", msg.reading("TH1", "2020-01-01T00:15:00Z", 1.0, seq=1),
                     msg.reading("TH1", "2020-01-01T00:30:00Z", 2.0, seq=2),
                     msg.reading("TH1", "2019-12-31T23:45:00Z", 0.0, seq=0))
    fake_history.gate = threading.Event()
    ws = connect(make_client())
    subscribe(ws, id="h", stream="raw", sites=["site1"], sensors=["TH1"], since="2020-01-01T00:00:00Z")
    assert fake_history.entered.wait(10)
    # while history loads, live records arrive: one already in HBase (the sync worker was quicker), one new
    fake_live.push("raw", msg.reading("TH1", "2020-01-01T00:30:00Z", 2.0, seq=2),
                   msg.reading("TH1", "2020-01-01T00:45:00Z", 3.0, seq=3))
    fake_history.gate.set()
    history = receive(ws)
    assert history["phase"] == "history" and values(history) == [("TH1", 1.0), ("TH1", 2.0)]
    assert all(r["kafka_ts"] is None for r in history["records"])
    assert receive(ws) == {"type": "history_end", "id": "h", "count": 2, "truncated": False}
    live = receive(ws)
    assert live["phase"] == "live" and values(live) == [("TH1", 3.0)]
    fake_live.push("raw", msg.reading("TH1", "2020-01-01T01:00:00Z", 4.0, seq=4))
    assert values(receive(ws)) == [("TH1", 4.0)]
    assert fake_history.queries[0].sites == ("site1",) and fake_history.queries[0].sensors == ("TH1",)


def test_last_n_history_request_is_passed_per_series(msg, make_client, fake_history) -> None:
    ws = connect(make_client(history_limit=50))
    subscribe(ws, id="x", stream="aggregates", sites=["site1"], last=7, limit=500)
    assert receive(ws) == {"type": "history_end", "id": "x", "count": 0, "truncated": False}
    query = fake_history.queries[0]
    assert (query.last, query.limit, query.from_ms) == (7, 50, None)


def test_revisions_are_marked(msg, make_client, fake_live) -> None:
    ws = connect(make_client())
    subscribe(ws, id="a", stream="aggregates", sites=["site1"])
    fake_live.push("aggregates", msg.aggregate(value=20.0, revision=1), msg.aggregate(value=20.4, revision=2))
    frame = receive(ws)
    assert [(r["data"]["revision"], r["revision"]) for r in frame["records"]] == [(1, False), (2, True)]


def test_late_and_out_of_order_rows_are_pushed_and_marked(msg, make_client, fake_live) -> None:
    ws = connect(make_client())
    subscribe(ws, id="w", stream="raw", sensors=["W1"])
    subscribe(ws, id="l", stream="late")
    fake_live.push("raw", msg.reading("W1", "2020-01-03T00:15:00Z", 0.4),
                   msg.reading("W1", "2020-01-01T00:15:00Z", 0.3))
    raw = receive(ws)
    assert [r["out_of_order"] for r in raw["records"]] == [False, True]
    fake_live.push("late", msg.late("W1", "2019-12-20T00:15:00Z"))
    frame = receive(ws)
    assert frame["stream"] == "late" and frame["records"][0]["data"]["reason"] == "beyond-allowed-lateness"


def test_dead_letters_without_a_site_reach_filtered_subscribers(msg, make_client, fake_live) -> None:
    ws = connect(make_client())
    subscribe(ws, id="d", stream="deadletters", sites=["site1"])
    fake_live.push("deadletters", msg.dead(b"garbage"), msg.dead(msg.reading(site="site9")),
                   msg.dead(msg.reading(site="site1")))
    frame = receive(ws)
    payloads = [base64.b64decode(r["data"]["payload_b64"]) for r in frame["records"]]
    assert payloads == [b"garbage", msg.reading(site="site1")]  # no site: everyone sees it; site9's is filtered out


def test_unsubscribe_stops_delivery(msg, make_client, fake_live) -> None:
    ws = connect(make_client())
    subscribe(ws, id="a", stream="raw")
    subscribe(ws, id="b", stream="raw", sensors=["TH2"])
    send(ws, {"type": "unsubscribe", "id": "a"})
    assert receive(ws) == {"type": "unsubscribed", "id": "a"}
    fake_live.push("raw", msg.reading("TH1"), msg.reading("TH2"))
    frame = receive(ws)
    assert frame["id"] == "b" and values(frame) == [("TH2", 20.5)]


@pytest.mark.parametrize(("text", "code"), [
    ("not json", "bad-json"),
    ("[1, 2]", "bad-message"),
    ('{"type": "launch"}', "unknown-type"),
    ('{"type": "subscribe", "id": "x", "stream": "metrics"}', "unknown-stream"),
    ('{"type": "subscribe", "id": "bad id!", "stream": "raw"}', "bad-message"),
    ('{"type": "subscribe", "id": "x", "stream": "raw", "sensors": ["TH9"]}', "bad-message"),
    ('{"type": "subscribe", "id": "x", "stream": "raw", "since": "2020-01-01T00:00:00Z"}', "bad-message"),
    ('{"type": "subscribe", "id": "x", "stream": "raw", "sites": ["s"], "since": "yesterday"}', "bad-message"),
    ('{"type": "subscribe", "id": "x", "stream": "raw", "sites": ["s"], "last": 5, "since": "2020-01-01T00:00:00Z"}',
     "bad-message"),
    ('{"type": "subscribe", "id": "x", "stream": "raw", "colour": "red"}', "bad-message"),
    ('{"type": "unsubscribe", "id": "never"}', "unknown-id"),
])
def test_a_bad_message_gets_an_error_frame_and_the_connection_stays_usable(msg, make_client, text, code) -> None:
    ws = connect(make_client())
    ws.send_text(text)
    frame = receive(ws)
    assert frame["type"] == "error" and frame["code"] == code and frame["detail"]
    send(ws, {"type": "ping", "id": "still-there"})
    assert receive(ws) == {"type": "pong", "id": "still-there"}


def test_duplicate_ids_and_the_subscription_limit(msg, make_client) -> None:
    ws = connect(make_client(max_subscriptions=2))
    subscribe(ws, id="a", stream="raw")
    send(ws, {"type": "subscribe", "id": "a", "stream": "late"})
    assert receive(ws)["code"] == "duplicate-id"
    subscribe(ws, id="b", stream="late")
    send(ws, {"type": "subscribe", "id": "c", "stream": "late"})
    assert receive(ws)["code"] == "too-many-subscriptions"


def test_a_binary_frame_is_unusable_error_then_close_1003(msg, make_client) -> None:
    ws = connect(make_client())
    ws.send_bytes(b"\x00\x01")
    assert receive(ws)["code"] == "binary"
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 1003


def test_an_oversized_message_is_refused_with_close_1009(msg, make_client) -> None:
    ws = connect(make_client())
    ws.send_text('{"type": "ping", "id": "' + "x" * 20_000 + '"}')
    assert receive(ws)["code"] == "too-large"
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 1009


def test_many_bad_messages_close_with_1003(msg, make_client) -> None:
    ws = connect(make_client())
    for _ in range(20):
        ws.send_text("{")
        assert receive(ws)["code"] == "bad-json"
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 1003


def test_auth_token_required_when_set(msg, make_client) -> None:
    client = make_client(token="s3cret")
    with pytest.raises(WebSocketDisconnect) as refused:
        opened(client)
    assert refused.value.code == 1008
    with pytest.raises(WebSocketDisconnect):
        opened(client, headers={"Authorization": "Bearer wrong"})
    connect(client, headers={"Authorization": "Bearer s3cret"})
    with pytest.raises(WebSocketDisconnect):  # the long-lived token never travels in a websocket URL: use a ticket
        opened(client, "/ws?access_token=s3cret")
    ticket = client.post("/api/v1/ws-ticket", headers={"Authorization": "Bearer s3cret"}).json()["ticket"]
    connect(client, f"/ws?ticket={ticket}")
    assert client.get("/api/v1/raw?site=site1").status_code == 401
    assert client.get("/api/v1/raw?site=site1", headers={"Authorization": "Bearer s3cret"}).status_code == 200
    assert client.get("/api/v1/sites?access_token=s3cret").status_code == 200
    # probes and the (data-free) page stay open
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json() == {"ready": True, "kafka": True}
    assert client.get("/metrics").status_code == 200
    assert client.get("/").status_code == 200


def test_auth_is_on_by_default_beyond_loopback() -> None:
    from iotcommon.errors import ConfigError
    from ws_bridge.config import BridgeConfig

    assert not BridgeConfig(host="127.0.0.1").auth_required
    assert BridgeConfig(host="0.0.0.0", token="t").auth_required
    assert not BridgeConfig(host="0.0.0.0", auth="off").auth_required
    with pytest.raises(ConfigError, match="IOTPIPE_BRIDGE_TOKEN"):
        BridgeConfig(host="0.0.0.0").check()
    with pytest.raises(ConfigError):
        BridgeConfig(auth="on").check()


def test_connection_limit_refuses_with_1013(msg, make_client) -> None:
    client = make_client(max_connections=2)
    connect(client)
    connect(client)
    ws = opened(client)
    assert receive(ws)["code"] == "too-many-connections"
    with pytest.raises(WebSocketDisconnect) as closed:
        ws.receive_json()
    assert closed.value.code == 1013


def test_heartbeats_carry_the_latest_simulated_time(msg, make_client, fake_live) -> None:
    ws = connect(make_client(heartbeat_s=0.05))
    fake_live.push("raw", msg.reading("TH1", "2020-01-05T10:15:00Z"), msg.reading("TH2", "2020-01-05T10:00:00Z"))
    while (frame := receive(ws))["type"] != "heartbeat" or "raw" not in frame["latest"]:
        pass
    assert frame["latest"]["raw"] == "2020-01-05T10:15:00Z"
