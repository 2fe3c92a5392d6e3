"""Fuzzing the REAL bridge (uvicorn with the production settings) with REAL Kafka and HBase behind it.

HBase and the output topics hold valid records and hostile ones (NaN, deep nesting, non-UTF-8, 1 MB strings, markup,
RTL overrides, timestamps beyond year 9999, wrong types). Hypothesis then drives:

- the HTTP API from its own OpenAPI document: every documented operation with well-formed, malformed and
  out-of-bound parameters. No answer is a 5xx and every answer matches the document (status, body schema, headers);
- the websocket with sequences of frames: protocol messages with fields of every type, malformed JSON, deep nesting,
  huge and binary frames. Every server frame matches server.v1.json; a connection is only ever closed with 1003
  (binary) or 1009 (too big), never by a crash, and a final ping is answered otherwise.

Then: thousands of subscriptions on one connection, and a stuck reader while Kafka delivers tens of thousands of
records, with the server's queues checked to stay within their bounds. Each fuzz run prints its example count and
seed (``IOTPIPE_FUZZ_SEED`` replays a run, ``IOTPIPE_FUZZ_EXAMPLES`` changes the count).
"""

from __future__ import annotations

import base64
import collections
import json
import os
import random
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import wait
from importlib import resources
from types import SimpleNamespace
from typing import Any

import httpx
import jsonschema
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from iotcommon import hbase_layout as layout
from iotcommon.messages import Aggregate, DeadLetter, LateReading, Reading
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics
from ws_bridge.app import create_app
from ws_bridge.config import BridgeConfig
from ws_bridge.records import STREAMS, topic_of

pytestmark = [pytest.mark.kafka, pytest.mark.hbase]

SERVER_SCHEMA = json.loads(resources.files("ws_bridge").joinpath("schemas", "server.v1.json").read_text())
HTTP_EXAMPLES = int(os.environ.get("IOTPIPE_FUZZ_EXAMPLES", "200"))
WS_EXAMPLES = int(os.environ.get("IOTPIPE_FUZZ_EXAMPLES", "80"))
QUEUE_RECORDS = 2000


def fuzz_seed() -> int:
    return int(os.environ.get("IOTPIPE_FUZZ_SEED") or random.SystemRandom().randrange(2**32))


# --- stored and live data: valid and hostile ------------------------------------------------------------------


def reading(site: str, sensor: str, minute: int, seq: int) -> Reading:
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(1_577_836_800 + 60 * minute))
    return Reading(site, sensor, ts, 20.0 + minute % 7, SENSORS[sensor].unit, seq)


def hostile_readings() -> list[bytes]:
    """Readings of site1/TH1 that are not what the stream job would ever write."""
    base = {"v": 1, "site": "site1", "sensor": "TH1", "ts": "2020-01-01T06:00:00Z", "value": 1.0, "unit": "C",
            "seq": 1}
    variants: list[dict[str, Any]] = [
        {"unit": "<img src=x onerror=alert(1)></script>\u202egnp.exe"},
        {"unit": "x" * 1_000_000},
        {"value": "20"}, {"value": None}, {"value": True}, {"seq": "7"}, {"unit": 5},
        {"ts": "9999-12-31T23:59:59-14:00"}, {"ts": "0001-01-01T00:00:00+14:00"}, {"ts": "99999-01-01T00:00:00Z"},
    ]
    out = [json.dumps({**base, **v, "seq": i}).encode() if "seq" not in v else json.dumps({**base, **v}).encode()
           for i, v in enumerate(variants, start=100)]
    out += [b'{"v":1,"site":"site1","sensor":"TH1","ts":"2020-01-01T06:30:00Z","value":NaN,"unit":"C","seq":3}',
            b'{"v":1,"site":"site1","sensor":"TH1","ts":"2020-01-01T06:45:00Z","value":1,"unit":"\\ud800","seq":4}',
            b"[" * 50_000, b"{broken", b"\xff\xfe\x00", b"", b"null", b"42"]
    return out


def stored_rows() -> dict[str, list[tuple[bytes, bytes]]]:
    raw = [reading(site, sensor, m * 15, m) for site in ("site1", "site2") for sensor in ("TH1", "TH2", "W1")
           for m in range(1, 60)]
    rows: dict[str, list[tuple[bytes, bytes]]] = {
        "raw": [(layout.reading_key(r.site, r.sensor, 1_577_836_800_000 + int(r.seq) * 900_000, r.seq), r.encode())
                for r in raw],
        "aggregates": [(layout.aggregate_key("site1", "AggDay[TH1]", f"2020-01-0{d}"),
                        Aggregate("site1", "AggDay[TH1]", "AggDay", "TH1", f"2020-01-0{d}", 21.5, "C", 96, d,
                                  "2019-12-31T22:00:00Z", "2020-01-01T22:00:00Z", "2026-01-01T00:00:00Z").encode())
                       for d in range(1, 8)],
        "late": [(layout.reading_key("site1", "W1", 1_577_836_800_000 + i, i),
                  LateReading(reading("site1", "W1", i, i), "beyond-allowed-lateness", "2020-01-01", 9).encode())
                 for i in range(5)],
        "deadletters": [(layout.deadletter_key("p.readings", 0, i),
                         DeadLetter("unparsable", "<b>bold</b>", "p.readings", 0, i, None,
                                    base64.b64encode(payload).decode(), "2020-01-02T00:00:00Z").encode())
                        for i, payload in enumerate([b"garbage", b"\xff" * 10, b"[" * 5000, b"<script>x</script>"])],
    }
    for n, value in enumerate(hostile_readings()):
        key = layout.reading_key("site1", "TH1", 1_577_858_400_000 + n, 900 + n)
        rows["raw"].append((key, value))
        rows["late"].append((key, value))
        rows["aggregates"].append((layout.aggregate_key("site1", "AggDay[TH1]", f"2020-02-{n + 1:02d}"), value))
        rows["deadletters"].append((layout.deadletter_key("p.readings", 1, n), value))
    return rows


@pytest.fixture(scope="module")
def real_bridge(kafka_service: Any, hbase_service: Any, serve_app: Any) -> Iterator[SimpleNamespace]:
    prefix = f"fuzz_{uuid.uuid4().hex[:8]}"
    topics = Topics(prefix)
    with AdminClient({"bootstrap.servers": kafka_service.bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(topic_of(topics, s), num_partitions=1, replication_factor=1)
                                       for s in STREAMS], request_timeout=30)
        wait(futures.values())  # every request answered before the block destroys the client
        for future in futures.values():
            future.result()
    conn = hbase_service.connection()
    try:
        for table in layout.TABLES:
            conn.create_table(layout.table_name(prefix, table), {layout.FAMILY: {"max_versions": 1}})
        for table, rows in stored_rows().items():
            with conn.table(layout.table_name(prefix, table)).batch() as batch:
                for key, value in rows:
                    batch.put(key, {layout.MESSAGE_COLUMN: value})
        config = BridgeConfig(port=0, kafka_bootstrap=kafka_service.bootstrap, topic_prefix=prefix,
                              hbase_host=hbase_service.thrift_host, hbase_port=hbase_service.thrift_port,
                              table_prefix=prefix, heartbeat_s=5.0, queue_records=QUEUE_RECORDS, send_timeout_s=2.0,
                              history_limit=2000, max_response_bytes=4 << 20, site_zones="site2=America/New_York")
        app = create_app(config)
        port = serve_app(app, config)
        state = app.state.bridge
        assert state.live.ready.wait(60), "the Kafka tail did not start"
        deadline = time.monotonic() + 120  # ready comes after a first metadata request that may have timed out
        while not state.live.connected:  # assigned (from the end): the hostile records below reach the tail
            assert time.monotonic() < deadline, "the Kafka tail never assigned its partitions"
            time.sleep(0.1)
        # closed (flushed, destroyed) at the module's teardown, not whenever the last reference goes: a failed test's
        # traceback keeps this namespace, and with it a live client, into the next modules' broker restarts
        with (Producer({"bootstrap.servers": kafka_service.bootstrap, "linger.ms": 20}) as producer,
              httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http):
            for stream in STREAMS:  # hostile live records on every output topic (the tail must survive them)
                for value in hostile_readings():
                    if len(value) < 900_000:  # the broker's message size limit is 1 MB
                        producer.produce(topic_of(topics, stream), value=value)
            producer.flush(30)
            document = http.get("/api/v1/openapi.json").json()
            yield SimpleNamespace(port=port, state=state, http=http, document=document, topics=topics,
                                  producer=producer, url=f"ws://127.0.0.1:{port}/ws")
    finally:
        for table in layout.TABLES:
            name = layout.table_name(prefix, table)
            if name.encode() in conn.tables():
                conn.delete_table(name, disable=True)
        conn.close()


def settled(state: Any, timeout: float = 60.0) -> None:
    """Every connection the fuzzing opened is gone again, with its subscriptions."""
    deadline = time.monotonic() + timeout
    while state.sessions or state.hub.subscription_count:
        assert time.monotonic() < deadline, (len(state.sessions), state.hub.subscription_count)
        time.sleep(0.05)


# --- HTTP: hypothesis over the OpenAPI document ------------------------------------------------------------------

ODD_VALUES = ["", "0", "1", "-1", "²", "١٢", "9" * 25, "1e3", " 5", "0x10", "2020-01-01T00:00:00Z", "2020-01-01",
              "2020-01-01T00:00:00", "10000-01-01T00:00:00Z", "9999-12-31T23:59:59-14:00",
              "0001-01-01T00:00:00+14:00", "1970-01-01T00:00:00Z", "2286-11-20T17:46:39.998Z", "2286-11-20T17:46:40Z",
              "9999999999998", "9999999999999", "1577836800000", "1577923200000", "site1", "site2", "site1,site2",
              ",,,", "TH1", "TH1,TH9", "AggDay", "<img src=x onerror=alert(1)>", "\u202e", "\x00", "%", "null",
              "[]", "{}", "site1" * 20, "2001", str(401 * 86_400_000), ",".join(f"site{i}" for i in range(60))]
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=30)


def param_values(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    options: list[st.SearchStrategy[str]] = [st.sampled_from(ODD_VALUES), TEXT, st.integers(-10**20, 10**20).map(str)]
    items = schema.get("items", schema)
    if "enum" in items:
        options.append(st.sampled_from([str(v) for v in items["enum"]]))
    if items.get("type") == "integer":
        options.append(st.integers(items.get("minimum", 0) - 2, items.get("maximum", 10**6) + 2).map(str))
    return st.one_of(options)


def operation_requests(document: dict[str, Any]) -> st.SearchStrategy[tuple[str, str, list[tuple[str, str]]]]:
    choices = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            names = {p["name"]: p["schema"] for p in operation.get("parameters", [])}
            names["unknown"] = {"type": "string"}
            one_param = st.sampled_from(sorted(names)).flatmap(
                lambda name, n=names: st.lists(param_values(n[name]), min_size=1, max_size=60).map(
                    lambda values, name=name: [(name, v) for v in values]))
            params = st.lists(one_param, max_size=6).map(lambda groups: [pair for g in groups for pair in g])
            choices.append(params.map(lambda p, m=method, path=path: (m.upper(), path, p)))
    return st.one_of(choices)


def test_http_api_fuzzed_from_its_openapi_document(real_bridge: SimpleNamespace, openapi_check: Any,
                                                   capsys: Any) -> None:
    run_seed = fuzz_seed()
    statuses: collections.Counter[int] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    started = time.monotonic()

    @seed(run_seed)
    @settings(max_examples=HTTP_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(operation_requests(real_bridge.document))
    def one_request(request: tuple[str, str, list[tuple[str, str]]]) -> None:
        method, path, params = request
        response = real_bridge.http.request(method, path, params=params)
        statuses[response.status_code] += 1
        assert response.status_code < 500, (method, path, params, response.text[:500])
        openapi_check(real_bridge.document, method, path, response)
        if response.status_code >= 400:
            body = response.json()
            errors[body["error"] + (f":{body['bound']}" if "bound" in body else "")] += 1

    try:
        one_request()
    finally:
        with capsys.disabled():
            print(f"\nHTTP fuzz: {sum(statuses.values())} requests (examples {HTTP_EXAMPLES}, seed {run_seed}; replay "
                  f"with IOTPIPE_FUZZ_SEED={run_seed}) in {time.monotonic() - started:.0f} s; statuses "
                  f"{dict(sorted(statuses.items()))}; errors {dict(errors.most_common())}; "
                  f"server errors (5xx): {sum(n for s, n in statuses.items() if s >= 500)}")
    assert statuses[200] > 0 and statuses[400] > 0  # the fuzzing reached both sides of the validation
    assert real_bridge.http.get("/healthz").status_code == 200


# --- websocket: hypothesis over frames ---------------------------------------------------------------------------

JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**15, 10**15) | st.floats(allow_nan=False) | TEXT,
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                    max_leaves=8)
MESSAGE = st.fixed_dictionaries(
    {"type": st.sampled_from(["subscribe", "subscribe", "subscribe", "unsubscribe", "ping", "launch"]) | JSON},
    optional={
        "id": st.sampled_from(["a", "b", "c"]) | TEXT | JSON,
        "stream": st.sampled_from([*STREAMS, "metrics"]) | JSON,
        "sites": st.lists(st.sampled_from(["site1", "site2", "<img>", ""]) | TEXT, max_size=300) | JSON,
        "sensors": st.lists(st.sampled_from([*SENSORS, "TH9"]), max_size=12) | JSON,
        "since": st.sampled_from(["2020-01-01T00:00:00Z", "2020-01-01T10:00:00+02:00", "yesterday",
                                  "9999-12-31T23:59:59-14:00", "2020-01-01T00:00:00"]) | JSON,
        "last": st.integers(-5, 10**12) | JSON,
        "limit": st.integers(-5, 10**12) | JSON,
        "colour": JSON,
    })
VALID_SUBSCRIBE = st.fixed_dictionaries(
    {"type": st.just("subscribe"), "id": st.sampled_from(["h1", "h2", "h3"]), "stream": st.sampled_from(STREAMS),
     "sites": st.sampled_from([["site1"], ["site2"], ["site1", "site2"]])},
    optional={"sensors": st.lists(st.sampled_from(sorted(SENSORS)), min_size=1, max_size=3, unique=True),
              "last": st.integers(1, 3000), "limit": st.integers(1, 5000)})
FRAME = st.one_of(
    VALID_SUBSCRIBE.map(lambda m: ("text", json.dumps(m))),  # history from the hostile HBase tables, then live
    VALID_SUBSCRIBE.map(lambda m: ("text", json.dumps(m))),
    MESSAGE.map(lambda m: ("text", json.dumps(m))),
    MESSAGE.map(lambda m: ("text", json.dumps(m))),
    TEXT.map(lambda t: ("text", t)),
    st.integers(1, 100_000).map(lambda depth: ("text", "[" * depth)),
    st.sampled_from([16_385, 200_000, 1_100_000]).map(lambda n: ("text", '{"type":"ping","id":"' + "x" * n + '"}')),
    st.binary(max_size=64).map(lambda b: ("binary", b)),
)


def exchange(url: str, frames: list[tuple[str, Any]]) -> tuple[int | None, list[dict[str, Any]]]:
    """Send the frames, then a ping; read until its pong or the close. (close code or None, frames received)."""
    received: list[dict[str, Any]] = []
    with connect(url, open_timeout=60, max_size=None, close_timeout=10) as ws:
        hello = json.loads(ws.recv(60))
        assert hello["type"] == "hello" and hello["site_zones"] == {"site2": "America/New_York"}
        try:
            for _kind, payload in frames:
                ws.send(payload)
            ws.send(json.dumps({"type": "ping", "id": "fuzz-end"}))
            histories: set[str] = set()  # subscriptions whose history has not ended yet
            ended = False
            while not ended or histories:
                frame = json.loads(ws.recv(60))
                jsonschema.validate(frame, SERVER_SCHEMA)
                received.append(frame)
                if frame["type"] == "subscribed" and frame["history"]:
                    histories.add(frame["id"])
                elif frame["type"] == "history_end":
                    histories.discard(frame["id"])
                ended = ended or frame == {"type": "pong", "id": "fuzz-end"}
            return None, received
        except ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), received


def test_websocket_frames_fuzzed(real_bridge: SimpleNamespace, capsys: Any) -> None:
    run_seed = fuzz_seed()
    closes: collections.Counter[str] = collections.Counter()
    codes: collections.Counter[str] = collections.Counter()
    sent = [0]
    started = time.monotonic()

    @seed(run_seed)
    @settings(max_examples=WS_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.lists(FRAME, min_size=1, max_size=6))
    def one_connection(frames: list[tuple[str, Any]]) -> None:
        sent[0] += len(frames)
        code, received = exchange(real_bridge.url, frames)
        for frame in received:
            codes[frame["code"] if frame["type"] == "error" else frame["type"]] += 1
        closes[str(code)] += 1
        may_close = any(kind == "binary" or len(payload) > 16_384 for kind, payload in frames)
        if code is not None or not may_close:
            assert code is None or (may_close and code in (1003, 1009)), (code, [p[:80] for _, p in frames])

    try:
        one_connection()
    finally:
        with capsys.disabled():
            print(f"\nwebsocket fuzz: {sum(closes.values())} connections, {sent[0]} frames (examples {WS_EXAMPLES}, "
                  f"seed {run_seed}; replay with IOTPIPE_FUZZ_SEED={run_seed}) in {time.monotonic() - started:.0f} s;"
                  f" closes {dict(closes)}; frames received by type or error code {dict(codes.most_common())}")
    settled(real_bridge.state)
    assert real_bridge.http.get("/healthz").json()["status"] == "ok"


# --- many subscriptions, huge frames, slow readers -----------------------------------------------------------------


def test_thousands_of_subscriptions_and_huge_frames(real_bridge: SimpleNamespace) -> None:
    state = real_bridge.state
    with connect(real_bridge.url, open_timeout=60, max_size=None) as ws:
        ws.recv(60)
        for i in range(3000):
            try:
                ws.send(json.dumps({"type": "subscribe", "id": f"s{i}", "stream": "raw", "sites": ["site1"]}))
            except ConnectionClosed:
                break
        kinds: collections.Counter[str] = collections.Counter()
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                frame = json.loads(ws.recv(60))
                kinds[frame.get("code") or frame["type"]] += 1
                assert state.hub.subscription_count <= state.config.max_subscriptions
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1003  # 20 refused subscriptions: closed
    assert kinds["subscribed"] == state.config.max_subscriptions and kinds["too-many-subscriptions"] == 20
    for size in (16_385, 2_000_000):
        with connect(real_bridge.url, open_timeout=60, max_size=None) as ws:
            ws.recv(60)
            with pytest.raises(ConnectionClosed) as closed:
                ws.send("x" * size)
                while True:
                    ws.recv(60)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    settled(state)


def test_a_stuck_reader_stays_bounded_while_kafka_delivers(real_bridge: SimpleNamespace, stuck_client: Any) -> None:
    """A client that never reads is held to its queue bound and closed; a reading client gets every record or an
    overflow notice that counts it (never silence), whatever the machine's load."""
    state = real_bridge.state
    stuck_client(real_bridge.port, {"type": "subscribe", "id": "s", "stream": "raw"})
    total = 60_000

    def produce() -> None:
        for i in range(total):
            real_bridge.producer.produce(real_bridge.topics.raw, value=reading("slow", "TH1", i % 50_000, i).encode())
            if i % 5_000 == 0:
                real_bridge.producer.poll(0)
        real_bridge.producer.flush(60)

    with connect(real_bridge.url, open_timeout=60, max_size=None) as fast:
        fast.recv(60)
        fast.send(json.dumps({"type": "subscribe", "id": "f", "stream": "raw", "sites": ["slow"]}))
        assert json.loads(fast.recv(60))["type"] == "subscribed"
        deadline = time.monotonic() + 60
        while state.hub.subscription_count < 2:
            assert time.monotonic() < deadline, "the stuck client's subscription never arrived"
            time.sleep(0.05)
        producer = threading.Thread(target=produce)
        producer.start()
        got: list[int] = []
        dropped = 0
        most_pending = 0
        try:
            while len(got) + dropped < total:
                frame = json.loads(fast.recv(120))
                if frame["type"] == "data":
                    got.extend(r["data"]["seq"] for r in frame["records"])
                elif frame["type"] == "overflow":
                    dropped += frame["dropped"]
                most_pending = max([most_pending, *(s.pending_records for s in list(state.sessions))])
        finally:
            # whatever happens: the thread is done with the client before the module's teardown destroys it (a
            # client destroyed while another thread is in one of its calls crashes the process); bounded by its flush
            producer.join()
    assert len(got) == len(set(got)) and len(got) + dropped == total  # each record delivered once, or counted
    assert got == sorted(got)  # in order
    assert most_pending <= QUEUE_RECORDS
    deadline = time.monotonic() + 120
    while state.metrics.slow_clients_closed._value.get() < 1:  # the stuck one: dropped to its bound, then closed
        assert time.monotonic() < deadline, "the stuck client was never closed"
        time.sleep(0.1)
    settled(state)
    assert real_bridge.http.get("/healthz").json()["status"] == "ok"
