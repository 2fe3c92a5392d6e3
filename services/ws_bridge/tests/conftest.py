"""Fakes for the bridge's protocol unit tests (no Kafka, no HBase): a live source the test pushes records into and
an in-memory history. Tests against the real services live in test_bridge_http_hbase.py / test_bridge_live_kafka.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import jsonschema
import pytest
from starlette.testclient import TestClient

from iotcommon.messages import Aggregate, DeadLetter, LateReading, Reading
from iotcommon.sensors import SENSORS
from ws_bridge.app import create_app
from ws_bridge.config import BridgeConfig
from ws_bridge.history import Query, Result
from ws_bridge.records import OrderTracker, Record, decode
from ws_bridge.server import Server, uvicorn_config


def reading(sensor: str = "TH1", ts: str = "2020-01-01T00:15:00Z", value: float = 20.5, site: str = "site1",
            seq: int = 1) -> bytes:
    return Reading(site, sensor, ts, value, SENSORS[sensor].unit, seq).encode()


def aggregate(name: str = "AggDay[TH1]", day: str = "2020-01-01", value: float = 21.0, revision: int = 1,
              site: str = "site1") -> bytes:
    kind, sensor = name[:-1].split("[")
    return Aggregate(site, name, kind, sensor, day, value, SENSORS[sensor].unit, 96, revision,
                     f"{day}T00:00:00Z", f"{day}T23:59:59Z", "2026-01-01T00:00:00Z").encode()


def late(sensor: str = "W1", ts: str = "2020-01-01T00:15:00Z", site: str = "site1") -> bytes:
    r = Reading(site, sensor, ts, 0.5, SENSORS[sensor].unit, 7)
    return LateReading(r, "beyond-allowed-lateness", ts[:10], 600_000).encode()


def dead(payload: bytes = b"not json", at: str = "2020-01-02T00:00:00Z") -> bytes:
    return DeadLetter("unparsable", "not JSON", "iotpipe.readings", 0, 42, None,
                      __import__("base64").b64encode(payload).decode(), at).encode()


class FakeLive:
    """Stands in for the Kafka tail: the test pushes messages; they reach the hub like a Kafka batch would."""

    def __init__(self) -> None:
        self.connected = True
        self._deliver: Callable[[list[Record]], None] | None = None
        self._remember: Callable[[list[Record]], None] | None = None
        self._tracker = OrderTracker()
        self.started = threading.Event()

    def start(self, deliver: Callable[[list[Record]], None],
              remember: Callable[[list[Record]], None] | None = None) -> None:
        self._deliver, self._remember = deliver, remember
        self.started.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._deliver = None

    def push(self, stream: str, *values: bytes, kafka_ts: int = 1_700_000_000_000) -> None:
        assert self._deliver is not None, "app not started"
        self._deliver([decode(stream, v, kafka_ts=kafka_ts, tracker=self._tracker) for v in values])

    def push_older(self, stream: str, *values: bytes, kafka_ts: int = 1_700_000_000_000) -> None:
        """Records the tail's catch-up read from before the bridge started (KafkaTail's ``remember``)."""
        assert self._remember is not None, "app not started"
        self._remember([decode(stream, v, kafka_ts=kafka_ts, tracker=self._tracker) for v in values])


class FakeHistory:
    """In-memory history; `gate` (when set) holds queries until released, to interleave live records."""

    def __init__(self) -> None:
        self.rows: dict[str, list[Record]] = {"raw": [], "aggregates": [], "late": [], "deadletters": []}
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.queries: list[Query] = []

    def add(self, stream: str, *values: bytes) -> None:
        self.rows[stream].extend(decode(stream, v) for v in values)

    def query(self, query: Query) -> Result:
        self.queries.append(query)
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(30)
        out = [r for r in self.rows[query.stream]
               if (not query.sites or r.site in query.sites)
               and (query.sensors is None or r.sensor in query.sensors)
               and (query.from_ms is None or r.event_ms >= query.from_ms)]
        out.sort(key=lambda r: r.event_ms)
        return Result(out[-query.limit:], len(out) > query.limit)

    def sites(self) -> list[str]:
        return sorted({r.site for rows in self.rows.values() for r in rows if r.site})

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


BASE = BridgeConfig(port=0, heartbeat_s=3600.0)


def check_response(document: dict[str, Any], method: str, path: str, status: int, headers: Any, body: bytes) -> None:
    """Assert that a real response is one the OpenAPI document describes: its status, JSON body and X-Truncated."""
    operation = document["paths"][path][method.lower()]
    spec = operation["responses"].get(str(status))
    assert spec is not None, f"{method} {path} answered {status}, which the OpenAPI document does not list"
    media = spec["content"]["application/json"]
    assert headers["content-type"].startswith("application/json"), headers["content-type"]
    schema = {**media["schema"], "components": document["components"]}
    jsonschema.validate(json.loads(body), schema, cls=jsonschema.Draft202012Validator)
    for name, header in spec.get("headers", {}).items():
        assert headers.get(name) in header["schema"]["enum"], (name, headers.get(name))


@pytest.fixture
def openapi_check() -> Callable[..., None]:
    """``check(document, method, path_template, response)`` for httpx / TestClient responses."""

    def check(document: dict[str, Any], method: str, path: str, response: Any) -> None:
        check_response(document, method, path, response.status_code, response.headers, response.content)

    return check


@pytest.fixture
def msg() -> SimpleNamespace:
    """Builders of valid messages (bytes as on the topics): reading, aggregate, late, dead."""
    return SimpleNamespace(reading=reading, aggregate=aggregate, late=late, dead=dead)


@pytest.fixture
def fake_live() -> FakeLive:
    return FakeLive()


@pytest.fixture
def fake_history() -> FakeHistory:
    return FakeHistory()


@pytest.fixture
def make_client(fake_live: FakeLive, fake_history: FakeHistory) -> Iterator[Callable[..., TestClient]]:
    """A TestClient over the real app with the fakes; keyword arguments override config fields."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        app = create_app(replace(BASE, **overrides), history=fake_history, live=fake_live)  # type: ignore[arg-type]
        client = TestClient(app)
        client.__enter__()
        client.opened = []  # type: ignore[attr-defined]  # websocket sessions, closed at teardown
        clients.append(client)
        return client

    yield make
    for client in clients:
        for ws in client.opened:  # type: ignore[attr-defined]
            with contextlib.suppress(Exception):
                ws.__exit__(None, None, None)
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def serve_app() -> Iterator[Callable[[Any, BridgeConfig], int]]:
    """``serve(app, config) -> port``: the app under a real uvicorn server (the production settings of
    ws_bridge.server) on a free loopback port, in a thread; stopped at teardown."""
    running: list[tuple[Server, threading.Thread]] = []

    def serve(app: Any, config: BridgeConfig) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        server = Server(uvicorn_config(app, replace(config, log_level="WARNING")))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread))
        deadline = time.monotonic() + 60
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            assert thread.is_alive(), "uvicorn stopped while starting"
            time.sleep(0.05)
        port: int = sock.getsockname()[1]
        return port

    yield serve
    for server, thread in running:
        server.should_exit = True
        thread.join(30)
    asyncio.set_event_loop(None)


def open_stuck_client(port: int, subscribe: dict[str, Any]) -> socket.socket:
    """A websocket client by hand on a raw socket with a tiny receive buffer: it subscribes, then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    payload = json.dumps(subscribe).encode()
    assert len(payload) < 126
    mask = b"\x01\x02\x03\x04"
    sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))
    return sock


@pytest.fixture
def stuck_client() -> Iterator[Callable[[int, dict[str, Any]], socket.socket]]:
    """``stuck_client(port, subscribe_message)``: see open_stuck_client; closed at teardown."""
    opened: list[socket.socket] = []

    def make(port: int, subscribe: dict[str, Any]) -> socket.socket:
        opened.append(open_stuck_client(port, subscribe))
        return opened[-1]

    yield make
    for sock in opened:
        sock.close()
