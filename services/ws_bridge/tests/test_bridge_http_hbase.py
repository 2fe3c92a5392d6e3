"""The HTTP range-query API (and websocket history) against the REAL HBase + Thrift server.

Rows are written the way the sync worker writes them: keys from iotcommon.hbase_layout, the message JSON in d:m.
Expected answers are computed in the test from the rows it wrote. The live source is a FAKE (no Kafka needed here;
live tailing against real Kafka is in test_bridge_live_kafka.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from starlette.testclient import TestClient

from iotcommon import hbase_layout as layout
from iotcommon.messages import Aggregate, DeadLetter, LateReading, Reading
from iotcommon.sensors import SENSORS
from ws_bridge.app import create_app
from ws_bridge.config import BridgeConfig

pytestmark = pytest.mark.hbase

T0 = datetime(2020, 1, 1, tzinfo=UTC)


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def readings(site: str, sensor: str, n: int, base: float) -> list[Reading]:
    """Every 15 minutes from 2020-01-01 00:15Z: value = base + i."""
    return [Reading(site, sensor, iso(T0 + timedelta(minutes=15 * (i + 1))), base + i, SENSORS[sensor].unit, i)
            for i in range(n)]


def agg(site: str, name: str, day: str, value: float, revision: int = 1) -> Aggregate:
    kind, sensor = name[:-1].split("[")
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=2)  # Athens midnight, winter
    return Aggregate(site, name, kind, sensor, day, value, SENSORS[sensor].unit, 96, revision, iso(start),
                     iso(start + timedelta(days=1)), "2026-01-01T00:00:00Z")


STORED = {
    "raw": [*readings("site1", "TH1", 20, 10.0), *readings("site1", "TH2", 20, 30.0),
            *readings("site1", "HVAC1", 5, 100.0), *readings("site2", "TH1", 3, 50.0)],
    "aggregates": [agg("site1", "AggDay[TH1]", "2020-01-01", 20.5, revision=2),
                   agg("site1", "AggDay[TH1]", "2020-01-02", 21.5),
                   agg("site1", "AggDayDiff[Etot]", "2020-01-02", 62400.0),
                   agg("site1", "AggDayRest[Etot]", "2020-01-02", 51000.0),
                   agg("site2", "AggDay[TH1]", "2020-01-01", 19.0)],
    "late": [LateReading(r, "beyond-allowed-lateness", r.ts[:10], 864_000_000)
             for r in readings("site1", "W1", 2, 0.5)],
    "deadletters": [DeadLetter("unparsable", "not JSON", "p.readings", 0, offset, None, "bm90IGpzb24=",
                               iso(T0 + timedelta(hours=offset))) for offset in (3, 1, 2)],
}


@pytest.fixture(scope="module")
def tables(hbase_service: Any) -> Iterator[str]:
    import uuid

    prefix = f"bridge_{uuid.uuid4().hex[:8]}"
    conn = hbase_service.connection()
    try:
        for table in layout.TABLES:
            conn.create_table(layout.table_name(prefix, table), {layout.FAMILY: {"max_versions": 1}})
        puts = {
            "raw": [(layout.reading_key(r.site, r.sensor, ms(datetime.fromisoformat(r.ts)), r.seq), r.encode())
                    for r in STORED["raw"]],
            "aggregates": [(layout.aggregate_key(a.site, a.name, a.day), a.encode()) for a in STORED["aggregates"]],
            "late": [(layout.reading_key(x.reading.site, x.reading.sensor,
                                         ms(datetime.fromisoformat(x.reading.ts)), x.reading.seq), x.encode())
                     for x in STORED["late"]],
            "deadletters": [(layout.deadletter_key(d.source_topic, d.partition, d.offset), d.encode())
                            for d in STORED["deadletters"]],
        }
        for table, rows in puts.items():
            with conn.table(layout.table_name(prefix, table)).batch() as batch:
                for key, value in rows:
                    batch.put(key, {layout.MESSAGE_COLUMN: value})
                batch.put(key + b"x", {layout.MESSAGE_COLUMN: b"{broken"})  # a bad row is skipped, not fatal
        yield prefix
    finally:
        for table in layout.TABLES:
            name = layout.table_name(prefix, table)
            if name.encode() in conn.tables():
                conn.delete_table(name, disable=True)
        conn.close()


class NoLive:
    """FAKE live source: nothing arrives (this module tests HBase reads)."""

    connected = True

    def start(self, deliver: Any, remember: Any = None) -> None:
        return None

    def stop(self, timeout: float = 10.0) -> None:
        return None


@pytest.fixture(scope="module")
def client(hbase_service: Any, tables: str) -> Iterator[TestClient]:
    config = BridgeConfig(port=0, hbase_host=hbase_service.thrift_host, hbase_port=hbase_service.thrift_port,
                          table_prefix=tables, heartbeat_s=3600.0, history_limit=500,
                          site_zones="site2=America/New_York")
    with TestClient(create_app(config, live=NoLive())) as test_client:
        yield test_client


def get(client: TestClient, path: str, **params: Any) -> list[dict[str, Any]]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def expected_raw(site: str, sensors: set[str], lo: datetime, hi: datetime) -> list[tuple[str, str, float]]:
    rows = [r for r in STORED["raw"] if r.site == site and r.sensor in sensors
            and lo <= datetime.fromisoformat(r.ts) <= hi]
    return sorted((r.ts, r.sensor, r.value) for r in rows)


def test_raw_range_of_one_sensor_in_time_order(client: TestClient) -> None:
    lo, hi = T0 + timedelta(hours=1), T0 + timedelta(hours=3)
    rows = get(client, "/api/v1/raw", site="site1", sensor="TH1", **{"from": ms(lo), "to": ms(hi)})
    assert [(r["ts"], r["sensor"], r["value"]) for r in rows] == expected_raw("site1", {"TH1"}, lo, hi)
    assert len(rows) == 9  # 01:00 .. 03:00 inclusive, every 15 min
    assert all(r["time"] == ms(datetime.fromisoformat(r["ts"])) and r["site"] == "site1" for r in rows)


def test_raw_range_with_rfc3339_bounds_and_several_sensors(client: TestClient) -> None:
    lo, hi = T0, T0 + timedelta(hours=1)
    rows = get(client, "/api/v1/raw", site="site1", sensor="TH1,HVAC1", **{"from": iso(lo), "to": iso(hi)})
    assert [(r["ts"], r["sensor"], r["value"]) for r in rows] == expected_raw("site1", {"TH1", "HVAC1"}, lo, hi)


def test_every_sensor_of_a_site_when_sensor_is_omitted(client: TestClient) -> None:
    lo, hi = T0, T0 + timedelta(days=1)
    rows = get(client, "/api/v1/raw", site="site2", **{"from": ms(lo), "to": ms(hi)})
    assert [(r["ts"], r["sensor"], r["value"]) for r in rows] == expected_raw("site2", set(SENSORS), lo, hi)


def test_limit_keeps_the_newest_and_says_truncated(client: TestClient) -> None:
    response = client.get("/api/v1/raw", params={"site": "site1", "sensor": "TH2", "from": ms(T0),
                                                 "to": ms(T0 + timedelta(days=1)), "limit": 4})
    assert response.headers["X-Truncated"] == "true"
    newest = sorted(r.value for r in STORED["raw"] if r.site == "site1" and r.sensor == "TH2")[-4:]
    assert [r["value"] for r in response.json()] == newest


def test_without_a_range_the_newest_rows_of_each_series_follow_simulated_time(client: TestClient) -> None:
    rows = get(client, "/api/v1/raw", site="site1", sensor="TH1,TH2", last=2)
    want = sorted((r.ts, r.sensor, r.value) for s in ("TH1", "TH2")
                  for r in sorted((x for x in STORED["raw"] if x.site == "site1" and x.sensor == s),
                                  key=lambda x: x.ts)[-2:])
    assert [(r["ts"], r["sensor"], r["value"]) for r in rows] == want


def test_aggregates_with_kind_filter_and_revision(client: TestClient) -> None:
    rows = get(client, "/api/v1/aggregates", site="site1", sensor="TH1")
    assert [(r["name"], r["day"], r["value"], r["revision"]) for r in rows] == [
        ("AggDay[TH1]", "2020-01-01", 20.5, 2), ("AggDay[TH1]", "2020-01-02", 21.5, 1)]
    rest = get(client, "/api/v1/aggregates", site="site1", sensor="Etot", kind="AggDayRest")
    assert [(r["name"], r["value"]) for r in rest] == [("AggDayRest[Etot]", 51000.0)]
    day2 = get(client, "/api/v1/aggregates", site="site1", **{"from": "2020-01-02T12:00:00Z",
                                                               "to": "2020-01-03T12:00:00Z"})
    assert sorted(r["name"] for r in day2) == sorted(["AggDay[TH1]", "AggDayDiff[Etot]", "AggDayRest[Etot]"])


def test_late_rows(client: TestClient) -> None:
    rows = get(client, "/api/v1/late", site="site1")
    assert [(r["ts"], r["sensor"], r["value"], r["reason"]) for r in rows] == [
        (x.reading.ts, "W1", x.reading.value, "beyond-allowed-lateness") for x in STORED["late"]]


def test_dead_letters_newest_last_in_time_order(client: TestClient) -> None:
    rows = get(client, "/api/v1/deadletters")
    assert [(r["offset"], r["reason"], r["payload"]) for r in rows] == [(1, "unparsable", "not json"),
                                                                        (2, "unparsable", "not json"),
                                                                        (3, "unparsable", "not json")]


def test_sites(client: TestClient) -> None:
    assert get(client, "/api/v1/sites") == [{"site": "site1", "tz": "Europe/Athens"},
                                            {"site": "site2", "tz": "America/New_York"}]


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/api/v1/raw", {}, 400),
    ("/api/v1/raw", {"site": "site1", "sensor": "TH9"}, 400),
    ("/api/v1/raw", {"site": "site1", "from": "yesterday"}, 400),
    ("/api/v1/raw", {"site": "site1", "from": 10, "to": 5}, 400),
    ("/api/v1/raw", {"site": "site1", "kind": "AggDay"}, 400),
    ("/api/v1/raw", {"site": "site1", "limit": 0}, 400),
    ("/api/v1/metrics", {"site": "site1"}, 404),
])
def test_bad_queries_are_refused_with_a_reason(client: TestClient, path: str, params: dict[str, Any],
                                               status: int) -> None:
    response = client.get(path, params=params)
    assert response.status_code == status
    assert response.json()["detail"]


def test_websocket_history_comes_from_hbase(client: TestClient) -> None:
    with client.websocket_connect("/ws") as ws:
        assert ws.receive_json()["type"] == "hello"
        since = T0 + timedelta(hours=4)
        ws.send_json({"type": "subscribe", "id": "h", "stream": "raw", "sites": ["site1"], "sensors": ["TH1"],
                      "since": iso(since)})
        assert ws.receive_json()["type"] == "subscribed"
        frame = ws.receive_json()
        assert frame["phase"] == "history"
        got = [(r["data"]["ts"], r["data"]["sensor"], r["data"]["value"]) for r in frame["records"]]
        assert got == expected_raw("site1", {"TH1"}, since, T0 + timedelta(days=1))
        assert ws.receive_json() == {"type": "history_end", "id": "h", "count": len(got), "truncated": False}


def test_hbase_down_gives_503_and_an_error_frame(tables: str) -> None:
    from iotpipe_stack.ports import free_ports

    (port,) = free_ports(1)
    config = replace(BridgeConfig(port=0, heartbeat_s=3600.0), hbase_port=port, table_prefix=tables)
    with TestClient(create_app(config, live=NoLive())) as down:
        response = down.get("/api/v1/raw", params={"site": "site1"})
        assert response.status_code == 503 and response.json()["error"] == "hbase-unavailable"
        with down.websocket_connect("/ws") as ws:
            ws.receive_json()
            ws.send_json({"type": "subscribe", "id": "h", "stream": "raw", "sites": ["site1"], "last": 5})
            assert ws.receive_json()["type"] == "subscribed"
            error = ws.receive_json()
            assert (error["type"], error["code"], error["id"]) == ("error", "history-unavailable", "h")
            assert ws.receive_json()["type"] == "history_end"  # and the subscription goes on live
