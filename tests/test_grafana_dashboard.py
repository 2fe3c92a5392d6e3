"""Grafana as code: the generated files are up to date, the dashboard has the original's six panels and the new
ones, and every panel's Infinity query is answered by the bridge's HTTP API with the fields the panel selects.

The API answers come from the real app with a FAKE in-memory history (the HBase reads themselves are tested against
real HBase in services/ws_bridge/tests/test_bridge_http_hbase.py).
"""

from __future__ import annotations

import json
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from starlette.testclient import TestClient

from iotcommon.messages import Aggregate, DeadLetter, LateReading, Reading
from iotcommon.sensors import SENSORS, aggregate_names
from ws_bridge.app import create_app
from ws_bridge.config import BridgeConfig
from ws_bridge.history import Query, Result
from ws_bridge.records import Record, decode

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "dashboards" / "grafana" / "build.py"
DASHBOARD = json.loads((REPO / "dashboards" / "grafana" / "iotpipe-live.json").read_text())


def test_generated_files_are_up_to_date() -> None:
    result = subprocess.run([sys.executable, str(BUILD), "--check"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"run `python dashboards/grafana/build.py`:\n{result.stdout}"


def test_the_originals_six_panels_and_the_new_ones() -> None:
    titles = {p["title"]: p["type"] for p in DASHBOARD["panels"]}
    original = {"HVAC1": "table", "Daily - Etot": "barchart", "AggDay[THx]": "barchart", "MiAC": "trend",
                "TH": "trend", "Late Rejected Events": "table"}
    assert {t: titles.get(t) for t in original} == original
    queried = {(p["url"], tuple((q["key"], q["value"]) for q in p["url_options"]["params"]))
               for panel in DASHBOARD["panels"] for p in panel["targets"]}
    wanted_aggregates = {n for s in SENSORS for n in aggregate_names(s)}
    shown = {f"{dict(params)['kind']}[{dict(params)['sensor']}]" for url, params in queried
             if url == "/api/v1/aggregates" and "kind" in dict(params)}
    assert shown == wanted_aggregates  # every AggDay / AggDayDiff / AggDayRest / AggDayMov series has a panel
    assert {"W1", "Wtot"} <= {dict(params).get("sensor") for url, params in queried if url == "/api/v1/raw"}
    assert any(url == "/api/v1/deadletters" for url, _ in queried)
    stacked = next(p for p in DASHBOARD["panels"] if p["title"] == "MiAC")
    assert stacked["fieldConfig"]["defaults"]["custom"]["stacking"]["mode"] == "normal"


def test_every_query_uses_the_provisioned_infinity_datasource() -> None:
    uids = {t["datasource"]["uid"] for p in DASHBOARD["panels"] for t in p["targets"]}
    assert uids == {"iotpipe-bridge"}
    provisioned = (REPO / "dashboards" / "grafana" / "provisioning" / "datasources" / "iotpipe-bridge.yaml").read_text()
    assert "uid: iotpipe-bridge" in provisioned and "type: yesoreyeram-infinity-datasource" in provisioned


def test_the_sidecar_configmaps_carry_the_datasource_and_the_dashboard_verbatim() -> None:
    result = subprocess.run([sys.executable, str(BUILD), "--configmaps"], capture_output=True, text=True, check=True)
    maps = {d["metadata"]["name"]: d for d in yaml.safe_load_all(result.stdout) if d}
    assert set(maps) == {"iotpipe-grafana-datasource", "iotpipe-grafana-dashboard"}
    dashboard = maps["iotpipe-grafana-dashboard"]
    assert dashboard["metadata"]["labels"] == {"grafana_dashboard": "1"}
    assert json.loads(dashboard["data"]["iotpipe-live.json"]) == DASHBOARD
    datasource = maps["iotpipe-grafana-datasource"]
    assert datasource["metadata"]["labels"] == {"grafana_datasource": "1"}
    provisioned = (REPO / "dashboards" / "grafana" / "provisioning" / "datasources" / "iotpipe-bridge.yaml").read_text()
    assert datasource["data"]["iotpipe-bridge.yaml"] == provisioned


class FakeHistory:
    """FAKE history: a few stored messages of every stream for one site."""

    def __init__(self) -> None:
        values: dict[str, list[bytes]] = {"raw": [], "aggregates": [], "late": [], "deadletters": []}
        for sensor, spec in SENSORS.items():
            values["raw"].append(Reading("site1", sensor, "2020-01-02T00:00:00Z", 1.0, spec.unit, 1).encode())
            for name in aggregate_names(sensor):
                kind = name.split("[")[0]
                values["aggregates"].append(Aggregate("site1", name, kind, sensor, "2020-01-01", 2.0, spec.unit, 96, 2,
                                                      "2019-12-31T22:00:00Z", "2020-01-01T22:00:00Z",
                                                      "2026-01-01T00:00:00Z").encode())
        late = Reading("site1", "W1", "2019-12-20T00:15:00Z", 0.4, "l", 9)
        values["late"].append(LateReading(late, "beyond-allowed-lateness", "2019-12-20", 1).encode())
        values["deadletters"].append(DeadLetter("schema", "bad", "iotpipe.readings", 0, 1, None, "e30=",
                                                "2020-01-02T00:00:00Z").encode())
        self.rows: dict[str, list[Record]] = {k: [decode(k, v) for v in vs] for k, vs in values.items()}

    def query(self, query: Query) -> Result:
        out = [r for r in self.rows[query.stream] if (not query.sites or r.site in query.sites)
               and (query.sensors is None or r.sensor in query.sensors)]
        return Result(out, False)

    def sites(self) -> list[str]:
        return ["site1"]

    def ping(self) -> None:
        return None

    def close(self) -> None:
        return None


class NoLive:
    connected = True

    def start(self, deliver: Any, remember: Any = None) -> None:
        return None

    def stop(self, timeout: float = 10.0) -> None:
        return None


@pytest.fixture(scope="module")
def api() -> Any:
    with TestClient(create_app(BridgeConfig(port=0, heartbeat_s=3600.0), history=FakeHistory(), live=NoLive())) as c:
        yield c


@pytest.mark.parametrize("panel", DASHBOARD["panels"], ids=lambda p: p["title"])
def test_each_panel_query_is_answered_with_the_selected_fields(api: TestClient, panel: dict[str, Any]) -> None:
    for t in panel["targets"]:
        params = {q["key"]: q["value"].replace("$site", "site1") for q in t["url_options"]["params"]}
        response = api.get(t["url"], params=params)
        assert response.status_code == 200, (panel["title"], response.text)
        rows = response.json()
        assert rows, f"{panel['title']}: no rows for {t['url']} {params}"
        for c in t["columns"]:
            assert all(c["selector"] in row for row in rows), (panel["title"], c["selector"])


def test_the_site_variable_query_is_answered(api: TestClient) -> None:
    variable = DASHBOARD["templating"]["list"][0]["query"]["infinityQuery"]
    assert api.get(variable["url"]).json() == [{"site": "site1", "tz": "Europe/Athens"}]  # tz: the site's zone


def test_build_module_imports_cleanly() -> None:
    namespace = runpy.run_path(str(BUILD))
    assert namespace["DS_UID"] == "iotpipe-bridge"
