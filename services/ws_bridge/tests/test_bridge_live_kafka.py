"""Live tailing against the REAL Kafka broker (and, in the last test, real HBase too).

The stream job writes its output topics transactionally; these tests do the same with a transactional producer, so
read_committed is exercised: an aborted transaction never reaches a client (aggregates, late, dead letters, and raw
readings with live_raw=committed). Raw readings on the uncommitted live path (the default) show before the commit, and
a replay after an aborted transaction shows once, while the sync worker's read_committed consumer still reads
every committed reading once and nothing aborted. History comes from a FAKE in-memory
source except in test_history_from_hbase_then_live_from_kafka, which uses both real services.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import wait
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from starlette.testclient import TestClient, WebSocketTestSession

from hbase_sync.cli import consumer_settings
from hbase_sync.config import SyncConfig
from hbase_sync.metrics import SyncMetrics
from iotcommon import hbase_layout as layout
from iotcommon.topics import Topics
from ws_bridge.app import create_app
from ws_bridge.config import BridgeConfig

pytestmark = pytest.mark.kafka


def create_topics(bootstrap: str, names: list[str]) -> None:
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(n, num_partitions=2, replication_factor=1) for n in names],
                                      request_timeout=30)
        wait(futures.values())  # every request answered before the block destroys the client
        for future in futures.values():
            future.result()


def transactional(bootstrap: str) -> Producer:
    """A producer with transactions initialised; use it as ``with transactional(...) as producer:``, which flushes and
    destroys it at the end of the block, in this thread, whatever happens in it (one left to its last reference can
    outlive a failed test in the traceback and see the broker restarts of the tests after it)."""
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": f"test-{uuid.uuid4().hex}",
                         "enable.idempotence": True})
    producer.init_transactions(30)
    return producer


def produce_once(bootstrap: str, topic: str, items: list[tuple[str | None, bytes]]) -> None:
    """Commit ``items`` in one transaction of a producer of their own, destroyed before this returns."""
    with transactional(bootstrap) as producer:
        produce(producer, topic, items)


def produce(producer: Producer, topic: str, items: list[tuple[str | None, bytes]], *, commit: bool = True) -> None:
    producer.begin_transaction()
    for key, value in items:
        producer.produce(topic, value=value, key=key)
    producer.flush(30)
    if commit:
        producer.commit_transaction(30)
    else:
        producer.abort_transaction(30)


@contextlib.contextmanager
def bridge(config: BridgeConfig, **kwargs: Any) -> Iterator[TestClient]:
    app = create_app(config, **kwargs)
    with TestClient(app) as client:
        live = app.state.bridge.live
        assert live.ready.wait(60), "the Kafka tail did not start"
        # `ready` comes after the tail's first metadata request, which can time out on a loaded machine; the tail then
        # assigns its partitions (from the end) at a later attempt: records produced before that would never come
        deadline = time.monotonic() + 120
        while not live.connected:
            assert time.monotonic() < deadline, "the Kafka tail never assigned its partitions"
            time.sleep(0.1)
        client.opened = []  # type: ignore[attr-defined]
        try:
            yield client
        finally:
            for ws in client.opened:  # type: ignore[attr-defined]
                with contextlib.suppress(Exception):
                    ws.__exit__(None, None, None)


def connect(client: TestClient) -> WebSocketTestSession:
    ws = client.websocket_connect("/ws").__enter__()
    client.opened.append(ws)  # type: ignore[attr-defined]
    assert ws.receive_json()["type"] == "hello"
    return ws


def subscribe(ws: WebSocketTestSession, **fields: Any) -> None:
    ws.send_json({"type": "subscribe", **fields})
    assert ws.receive_json()["type"] == "subscribed"


def collect(ws: WebSocketTestSession, count: int) -> list[dict[str, Any]]:
    """Records of data frames until `count` have arrived."""
    records: list[dict[str, Any]] = []
    while len(records) < count:
        frame = ws.receive_json()
        if frame["type"] == "data":
            records.extend(frame["records"])
    return records


@pytest.fixture
def topics(kafka_service: Any) -> Topics:
    t = Topics(f"bt{uuid.uuid4().hex[:8]}")
    create_topics(kafka_service.bootstrap, [t.raw, t.aggregates, t.late, t.deadletter])
    return t


def config_for(kafka_service: Any, topics: Topics, **extra: Any) -> BridgeConfig:
    return BridgeConfig(port=0, kafka_bootstrap=kafka_service.bootstrap, topic_prefix=topics.prefix,
                        heartbeat_s=3600.0, **extra)


class NoHistory:
    """FAKE history: empty (these tests are about live tailing)."""

    def query(self, query: Any) -> Any:
        from ws_bridge.history import Result

        return Result([], False)

    def sites(self) -> list[str]:
        return []

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


def test_committed_records_are_pushed_aborted_ones_never(kafka_service: Any, topics: Topics,
                                                         msg: SimpleNamespace) -> None:
    with (transactional(kafka_service.bootstrap) as producer,
          bridge(config_for(kafka_service, topics, live_raw="committed"), history=NoHistory()) as client):
        ws = connect(client)
        subscribe(ws, id="th1", stream="raw", sites=["site1"], sensors=["TH1"])
        produce(producer, topics.raw, [("site1/TH1", msg.reading("TH1", "2020-01-01T00:15:00Z", 1.0, seq=1))])
        produce(producer, topics.raw, [("site1/TH1", msg.reading("TH1", "2020-01-01T00:30:00Z", 666.0, seq=2))],
                commit=False)
        produce(producer, topics.raw, [("site1/TH2", msg.reading("TH2", "2020-01-01T00:30:00Z", 9.0, seq=2)),
                                       ("site1/TH1", msg.reading("TH1", "2020-01-01T00:45:00Z", 3.0, seq=3))])
        records = collect(ws, 2)
        assert [r["data"]["value"] for r in records] == [1.0, 3.0]
        assert all(isinstance(r["kafka_ts"], int) for r in records)


def test_uncommitted_live_path_shows_readings_before_the_commit_and_a_replay_once(
        kafka_service: Any, topics: Topics, msg: SimpleNamespace) -> None:
    """The stream job fails before its checkpoint (transaction aborted), restores it and sends the same readings
    again: clients saw them before the abort and do not see them twice; storage reads only the committed copies."""
    one, two, three = (msg.reading("TH1", f"2020-01-01T00:{m}:00Z", float(v), seq=v)
                       for v, m in ((1, "15"), (2, "30"), (3, "45")))
    with (transactional(kafka_service.bootstrap) as before_failure,
          bridge(config_for(kafka_service, topics), history=NoHistory()) as client):
        ws = connect(client)
        subscribe(ws, id="th1", stream="raw", sites=["site1"])
        before_failure.begin_transaction()
        for value in (one, two):
            before_failure.produce(topics.raw, value=value, key="site1/TH1")
        before_failure.flush(30)
        assert [r["data"]["seq"] for r in collect(ws, 2)] == [1, 2]  # shown while the transaction is open
        before_failure.abort_transaction(30)
        produce_once(kafka_service.bootstrap, topics.raw,
                     [("site1/TH1", one), ("site1/TH1", two), ("site1/TH1", three)])  # the restored job's replay
        # one key, one partition, in order: the replayed 1 and 2 would arrive before 3
        assert [r["data"]["seq"] for r in collect(ws, 1)] == [3]
    settings = consumer_settings(SyncConfig(kafka_bootstrap=kafka_service.bootstrap,
                                            topic_prefix=topics.prefix), SyncMetrics())
    assert settings["isolation.level"] == "read_committed"
    storage = Consumer({**settings, "group.id": f"storage-{uuid.uuid4().hex[:8]}"})
    try:
        storage.subscribe([topics.raw])
        stored: list[int] = []
        deadline = time.monotonic() + 60
        while len(stored) < 3 and time.monotonic() < deadline:
            message = storage.poll(1.0)
            if message is not None and message.error() is None:
                stored.append(json.loads(message.value())["seq"])
        assert sorted(stored) == [1, 2, 3]
        assert storage.poll(2.0) is None  # nothing more: the aborted copies are not read
    finally:
        storage.close()


def test_revisions_late_and_dead_letters_arrive_live(kafka_service: Any, topics: Topics,
                                                     msg: SimpleNamespace) -> None:
    with (transactional(kafka_service.bootstrap) as producer,
          bridge(config_for(kafka_service, topics), history=NoHistory()) as client):
        ws = connect(client)
        subscribe(ws, id="agg", stream="aggregates", sites=["site1"])
        subscribe(ws, id="late", stream="late")
        subscribe(ws, id="dl", stream="deadletters")
        key = "site1/AggDay[W1]/2020-01-01"
        produce(producer, topics.aggregates, [(key, msg.aggregate("AggDay[W1]", value=48.0, revision=1)),
                                              (key, msg.aggregate("AggDay[W1]", value=48.5, revision=2))])
        produce(producer, topics.late, [("site1/W1", msg.late("W1", "2019-12-21T00:15:00Z"))])
        produce(producer, topics.deadletter, [(None, msg.dead(b"\xff garbage"))])
        by_id: dict[str, list[dict[str, Any]]] = {"agg": [], "late": [], "dl": []}
        while sum(map(len, by_id.values())) < 4:
            frame = ws.receive_json()
            if frame["type"] == "data":
                by_id[frame["id"]].extend(frame["records"])
        assert [(r["data"]["value"], r["revision"]) for r in by_id["agg"]] == [(48.0, False), (48.5, True)]
        assert by_id["late"][0]["data"]["reading"]["ts"] == "2019-12-21T00:15:00Z"
        assert by_id["dl"][0]["data"]["reason"] == "unparsable"


def test_every_replica_sees_every_record(kafka_service: Any, topics: Topics, msg: SimpleNamespace) -> None:
    config = config_for(kafka_service, topics, consumer_group="same-group-on-purpose")
    with (transactional(kafka_service.bootstrap) as producer,
          bridge(config, history=NoHistory()) as one, bridge(config, history=NoHistory()) as two):
        ws1, ws2 = connect(one), connect(two)
        subscribe(ws1, id="a", stream="raw")
        subscribe(ws2, id="a", stream="raw")
        sent = [msg.reading("HVAC1", f"2020-01-01T0{h}:00:00Z", float(h), site=f"s{h % 3}", seq=h)
                for h in range(1, 9)]
        produce(producer, topics.raw, [(f"s{h % 3}/HVAC1", v) for h, v in zip(range(1, 9), sent, strict=True)])
        for ws in (ws1, ws2):
            got = collect(ws, len(sent))
            assert sorted(r["data"]["seq"] for r in got) == list(range(1, 9))


def test_a_topic_created_after_start_is_tailed_from_its_beginning(kafka_service: Any, msg: SimpleNamespace) -> None:
    topics = Topics(f"bt{uuid.uuid4().hex[:8]}")
    create_topics(kafka_service.bootstrap, [topics.raw])
    with bridge(config_for(kafka_service, topics), history=NoHistory()) as client:
        ws = connect(client)
        subscribe(ws, id="late", stream="late")
        create_topics(kafka_service.bootstrap, [topics.late])
        produce_once(kafka_service.bootstrap, topics.late, [("site1/W1", msg.late("W1"))])
        assert collect(ws, 1)[0]["data"]["reason"] == "beyond-allowed-lateness"


@pytest.mark.hbase
def test_history_from_hbase_then_live_from_kafka(kafka_service: Any, hbase_service: Any, topics: Topics,
                                                 msg: SimpleNamespace) -> None:
    prefix = f"bl_{uuid.uuid4().hex[:8]}"
    conn = hbase_service.connection()
    conn.create_table(layout.table_name(prefix, "raw"), {layout.FAMILY: {}})
    stored = [msg.reading("TH1", f"2020-01-01T0{h}:00:00Z", float(h), seq=h) for h in range(1, 4)]
    table = conn.table(layout.table_name(prefix, "raw"))
    for h, value in zip(range(1, 4), stored, strict=True):
        table.put(layout.reading_key("site1", "TH1", 1577836800000 + h * 3_600_000, h), {layout.MESSAGE_COLUMN: value})
    config = config_for(kafka_service, topics, hbase_host=hbase_service.thrift_host,
                        hbase_port=hbase_service.thrift_port, table_prefix=prefix)
    try:
        with bridge(config) as client:
            ws = connect(client)
            subscribe(ws, id="h", stream="raw", sites=["site1"], sensors=["TH1"], since="2020-01-01T02:00:00Z")
            history = ws.receive_json()
            assert history["phase"] == "history"
            assert [r["data"]["value"] for r in history["records"]] == [2.0, 3.0]
            assert ws.receive_json()["type"] == "history_end"
            produce_once(kafka_service.bootstrap, topics.raw,
                         [("site1/TH1", msg.reading("TH1", "2020-01-01T04:00:00Z", 4.0, seq=4))])
            live = ws.receive_json()
            assert live["phase"] == "live" and [r["data"]["value"] for r in live["records"]] == [4.0]
    finally:
        conn.delete_table(layout.table_name(prefix, "raw"), disable=True)
        conn.close()


def values_until(ws: WebSocketTestSession, last: float) -> list[float]:
    """The values of the data frames' records up to the one with value ``last``."""
    values: list[float] = []
    while last not in values:
        frame = ws.receive_json()
        if frame["type"] == "data":
            values.extend(r["data"]["value"] for r in frame["records"])
    return values


def commit_the_end(bootstrap: str, group: str, topic: str) -> None:
    """Commit ``topic``'s end for ``group``, as a sync worker does once it has stored everything before it. The end is
    the high watermark (read_uncommitted): everything produced and acknowledged. A read_committed consumer's end is the
    last stable offset, which stays before a just committed transaction until the broker has written its commit
    marker (after commit_transaction returns), so under load this could commit 0: the likely cause of one failure,
    the bridge caught up on days 1-5."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "isolation.level": "read_uncommitted"})
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        ends = [TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1])
                for p in partitions]
        consumer.commit(offsets=ends, asynchronous=False)
    finally:
        consumer.close()


def test_a_bridge_started_behind_the_sync_workers_gives_history_clients_what_hbase_lacks(
        kafka_service: Any, topics: Topics, msg: SimpleNamespace) -> None:
    """Days 1-2 are stored (the sync workers' group committed after them), days 3-4 are in Kafka only when the
    bridge starts. A history-first client gets days 3-4 (HBase, here an empty fake, would give it days 1-2) and then
    day 5 live; a client without history only day 5. (The chaos test's reconnecting client once missed days so.)"""
    key = "site1/AggDay[TH1]"  # one partition, in order

    def days(*numbers: int) -> list[tuple[str | None, bytes]]:
        return [(key, msg.aggregate(day=f"2020-01-0{d}", value=float(d))) for d in numbers]

    with transactional(kafka_service.bootstrap) as producer:
        produce(producer, topics.aggregates, days(1, 2))
        commit_the_end(kafka_service.bootstrap, topics.sync_group, topics.aggregates)
        produce(producer, topics.aggregates, days(3, 4))
        with bridge(config_for(kafka_service, topics), history=NoHistory()) as client:
            live_ws = connect(client)
            subscribe(live_ws, id="l", stream="aggregates", sites=["site1"])
            history_ws = connect(client)
            subscribe(history_ws, id="h", stream="aggregates", sites=["site1"], last=10)
            produce(producer, topics.aggregates, days(5))
            # day 5 comes last: the catch-up is read (and handed over) before what follows it on the partition
            assert values_until(history_ws, 5.0) == [3.0, 4.0, 5.0]
            assert values_until(live_ws, 5.0) == [5.0]


def test_the_live_tail_keeps_going_across_a_broker_restart(kafka_service: Any, topics: Topics,
                                                          msg: SimpleNamespace) -> None:
    """The broker stops and starts again under a running bridge (the chaos run does that too, but kills the bridge
    later, which would hide a tail that stopped): what is committed after the restart still reaches a live client,
    and what it had before is not sent again."""
    key = "site1/AggDay[TH1]"
    with bridge(config_for(kafka_service, topics), history=NoHistory()) as client:
        ws = connect(client)
        subscribe(ws, id="a", stream="aggregates", sites=["site1"])
        produce_once(kafka_service.bootstrap, topics.aggregates,
                     [(key, msg.aggregate(day="2020-01-01", value=1.0))])
        assert values_until(ws, 1.0) == [1.0]
        kafka_service.stop()
        try:
            time.sleep(2)  # the tail sees the broker gone
        finally:
            kafka_service.start()
        produce_once(kafka_service.bootstrap, topics.aggregates,
                     [(key, msg.aggregate(day="2020-01-02", value=2.0))])
        assert values_until(ws, 2.0) == [2.0]


def test_a_bridge_started_while_kafka_is_down_tails_from_the_end_once_it_is_back(
        kafka_service: Any, topics: Topics, msg: SimpleNamespace) -> None:
    with transactional(kafka_service.bootstrap) as producer:  # destroyed before the broker stops
        produce(producer, topics.raw, [("site1/TH1", msg.reading("TH1", "2020-01-01T00:15:00Z", 1.0, seq=1))])  # old
    kafka_service.stop()
    try:
        app = create_app(config_for(kafka_service, topics), history=NoHistory())
        with TestClient(app) as client:
            health = client.get("/readyz")
            assert health.status_code == 503 and health.json() == {"ready": False, "kafka": False}
            kafka_service.start()
            deadline = time.monotonic() + 120
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the bridge never reached Kafka"
                time.sleep(0.5)
            ws = client.websocket_connect("/ws").__enter__()
            try:
                ws.receive_json()
                subscribe(ws, id="a", stream="raw")
                produce_once(kafka_service.bootstrap, topics.raw,
                             [("site1/TH1", msg.reading("TH1", "2020-01-01T00:30:00Z", 2.0, seq=2))])
                assert [r["data"]["value"] for r in collect(ws, 1)] == [2.0]  # the old record is not replayed
            finally:
                ws.__exit__(None, None, None)
    finally:
        if not kafka_service.is_ready():
            kafka_service.start()
