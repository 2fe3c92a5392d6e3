"""Grafana as code for iotpipe: builds the dashboard JSON, provisioning files and sidecar ConfigMaps.

    python dashboards/grafana/build.py          # (re)write the generated files
    python dashboards/grafana/build.py --check  # exit 1 if a generated file is out of date (a test runs this)
    python dashboards/grafana/build.py --configmaps | kubectl apply -n <grafana's namespace> -f -

The dashboard and the datasource are written once, into the platform chart (helm reads only files inside a chart);
``dashboards/grafana/iotpipe-live.json`` and ``provisioning/datasources/`` are links to them.

The datasource is the Infinity plugin (``yesoreyeram-infinity-datasource``, maintained by Grafana Labs) pointed at
the bridge's HTTP API (``/api/v1/...``, see docs/bridge-protocol.md). Every query asks for the newest rows of each
series (``last=N``) rather than Grafana's time range, and the panels are tables, bar charts (per day) and trend
charts (x = reading time), which are not clipped to the time picker: the dashboard follows simulated time by itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DS_UID = "iotpipe-bridge"
DS = {"type": "yesoreyeram-infinity-datasource", "uid": DS_UID}
DASHBOARD_UID = "iotpipe-live"
COLORS = {"TH1": "#ff7a59", "TH2": "#4fb3ff", "HVAC1": "#f5c542", "HVAC2": "#c49bff", "MiAC1": "#5ad19a",
          "MiAC2": "#2f9e8f", "W1": "#5fa8ff", "Etot": "#f5c542", "Wtot": "#5fa8ff", "Mov1": "#ff6fae"}
CHART_FILES = REPO / "charts" / "iotpipe-platform" / "files" / "grafana"
CHART_DASHBOARD = CHART_FILES / "dashboards" / "iotpipe-live.json"
CHART_DATASOURCE = CHART_FILES / "datasources" / "iotpipe-bridge.yaml"


def col(selector: str, text: str, kind: str) -> dict[str, str]:
    return {"selector": selector, "text": text, "type": kind}


def target(ref: str, path: str, params: dict[str, str], columns: list[dict[str, str]]) -> dict[str, Any]:
    """One Infinity query: GET <datasource url><path>?<params>, a JSON array of rows -> a table frame."""
    return {
        "refId": ref, "datasource": DS, "type": "json", "source": "url", "parser": "backend", "format": "table",
        "url": path, "url_options": {"method": "GET", "data": "",
                                     "params": [{"key": k, "value": v} for k, v in params.items()]},
        "root_selector": "", "columns": columns, "filters": [],
    }


def raw(ref: str, sensor: str, last: int, *, as_day: bool = False) -> dict[str, Any]:
    x = col("ts", "day", "string") if as_day else col("time", "time", "number")
    return target(ref, "/api/v1/raw", {"site": "$site", "sensor": sensor, "last": str(last)},
                  [x, col("value", sensor, "number")])


def agg(ref: str, sensor: str, kind: str, label: str, days: int = 14) -> dict[str, Any]:
    return target(ref, "/api/v1/aggregates", {"site": "$site", "sensor": sensor, "kind": kind, "last": str(days)},
                  [col("day", "day", "string"), col("value", label, "number")])


def colors(names: list[str]) -> list[dict[str, Any]]:
    return [{"matcher": {"id": "byName", "options": n},
             "properties": [{"id": "color", "value": {"mode": "fixed", "fixedColor": COLORS.get(n.split("[")[-1]
                                                                                          .rstrip("]"), "#ff7a59")}}]}
            for n in names]


def join(field: str) -> list[dict[str, Any]]:
    return [{"id": "joinByField", "options": {"byField": field, "mode": "outer"}}]


class Layout:
    def __init__(self) -> None:
        self.panels: list[dict[str, Any]] = []

    def add(self, title: str, kind: str, w: int, h: int, x: int, y: int, targets: list[dict[str, Any]], *,
            description: str, unit: str = "", options: dict[str, Any] | None = None,
            custom: dict[str, Any] | None = None, overrides: list[dict[str, Any]] | None = None,
            transformations: list[dict[str, Any]] | None = None) -> None:
        self.panels.append({
            "id": len(self.panels) + 1, "type": kind, "title": title, "description": description,
            "gridPos": {"w": w, "h": h, "x": x, "y": y}, "datasource": DS, "targets": targets,
            "fieldConfig": {"defaults": {"unit": unit, "custom": custom or {}}, "overrides": overrides or []},
            "options": options or {}, "transformations": transformations or [],
        })


def trend(lines: int = 1, *, stacked: bool = False, step: bool = False, fill: int = 10) -> dict[str, Any]:
    return {"drawStyle": "line", "lineInterpolation": "stepAfter" if step else "linear", "fillOpacity": fill,
            "lineWidth": 1 if lines > 1 else 2, "showPoints": "never",
            "stacking": {"mode": "normal" if stacked else "none", "group": "A"}}


TIME_AXIS = [{"matcher": {"id": "byName", "options": "time"},
              "properties": [{"id": "unit", "value": "dateTimeAsLocalNoDateIfToday"}]}]
BARS = {"xField": "day", "orientation": "vertical", "groupWidth": 0.75, "barWidth": 0.9, "showValue": "never",
        "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}, "xTickLabelRotation": -30}


def dashboard() -> dict[str, Any]:
    p = Layout()
    # -- the original's six panels (same titles and places) ------------------------------------------------------
    p.add("HVAC1", "table", 12, 8, 0, 0,
          [target("A", "/api/v1/raw", {"site": "$site", "sensor": "HVAC1", "last": "96"},
                  [col("ts", "time", "timestamp"), col("value", "HVAC1 (Wh)", "number"), col("seq", "seq", "number")])],
          description="Raw 15-minute HVAC1 readings, newest first (the original's 15-min table).", unit="",
          transformations=[{"id": "sortBy", "options": {"sort": [{"field": "time", "desc": True}]}}])
    p.add("Daily - Etot", "barchart", 12, 8, 12, 0, [raw("A", "Etot", 14, as_day=True)],
          description="The raw cumulative Etot meter at each local midnight (as the original showed).", unit="Wh",
          options={**BARS, "xField": "day"}, overrides=colors(["Etot"]), custom={"fillOpacity": 59,
                                                                               "gradientMode": "opacity"})
    p.add("AggDay[THx]", "barchart", 8, 8, 0, 8,
          [agg("A", "TH1", "AggDay", "AggDay[TH1]"), agg("B", "TH2", "AggDay", "AggDay[TH2]")],
          description="Daily mean temperatures.", unit="celsius", options=BARS,
          overrides=colors(["AggDay[TH1]", "AggDay[TH2]"]), transformations=join("day"))
    p.add("MiAC", "trend", 8, 8, 8, 8, [raw("A", "MiAC1", 192), raw("B", "MiAC2", 192)],
          description="Raw 15-minute MiAC1 and MiAC2, stacked (the newest two simulated days).", unit="Wh",
          options={"xField": "time", "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
          custom=trend(2, stacked=True, step=True, fill=30), overrides=TIME_AXIS + colors(["MiAC1", "MiAC2"]),
          transformations=join("time"))
    p.add("TH", "trend", 8, 8, 16, 8, [raw("A", "TH1", 192), raw("B", "TH2", 192)],
          description="Raw 15-minute TH1 and TH2 (the newest two simulated days).", unit="celsius",
          options={"xField": "time", "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
          custom=trend(2, fill=18), overrides=TIME_AXIS + colors(["TH1", "TH2"]), transformations=join("time"))
    p.add("Late Rejected Events", "table", 24, 8, 0, 16,
          [target("A", "/api/v1/late", {"site": "$site", "last": "100"},
                  [col("ts", "reading time", "timestamp"), col("sensor", "sensor", "string"),
                   col("value", "value", "number"), col("day", "day", "string"),
                   col("late_by_ms", "late by (ms)", "number"), col("reason", "reason", "string")])],
          description="Readings that arrived after their day's allowed lateness (not aggregated).",
          transformations=[{"id": "sortBy", "options": {"sort": [{"field": "reading time", "desc": True}]}}])
    # -- what the original never showed ----------------------------------------------------------------------------
    parts = ["HVAC1", "HVAC2", "MiAC1", "MiAC2"]
    p.add("AggDay sums (energy)", "barchart", 12, 8, 0, 24,
          [agg(chr(65 + i), s, "AggDay", f"AggDay[{s}]") for i, s in enumerate(parts)],
          description="Daily energy sums of the 15-minute sensors.", unit="Wh", options=BARS,
          overrides=colors([f"AggDay[{s}]" for s in parts]), transformations=join("day"))
    p.add("Energy per day: AggDayDiff / AggDayRest [Etot]", "barchart", 12, 8, 12, 24,
          [agg("A", "Etot", "AggDayDiff", "AggDayDiff[Etot]"), agg("B", "Etot", "AggDayRest", "AggDayRest[Etot]")],
          description="Day-over-day Etot and the rest after HVAC1+HVAC2+MiAC1+MiAC2.", unit="Wh", options=BARS,
          overrides=colors(["AggDayDiff[Etot]"]), transformations=join("day"))
    p.add("Water per day: AggDayDiff / AggDayRest [Wtot], AggDay[W1]", "barchart", 8, 8, 0, 32,
          [agg("A", "Wtot", "AggDayDiff", "AggDayDiff[Wtot]"), agg("B", "Wtot", "AggDayRest", "AggDayRest[Wtot]"),
           agg("C", "W1", "AggDay", "AggDay[W1]")],
          description="Day-over-day Wtot, the rest after W1 (the leak), and W1's daily sum.", unit="litre",
          options=BARS, overrides=colors(["AggDayDiff[Wtot]", "AggDay[W1]"]), transformations=join("day"))
    p.add("W1", "trend", 8, 8, 8, 32, [raw("A", "W1", 192)],
          description="Raw 15-minute W1 (late readings included).", unit="litre",
          options={"xField": "time", "legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}},
          custom=trend(1, fill=20), overrides=TIME_AXIS + colors(["W1"]))
    p.add("AggDayMov[Mov1]", "barchart", 8, 8, 16, 32, [agg("A", "Mov1", "AggDayMov", "AggDayMov[Mov1]")],
          description="Motion events per day.", unit="short", options=BARS, overrides=colors(["AggDayMov[Mov1]"]))
    p.add("Daily - Wtot", "barchart", 12, 8, 0, 40, [raw("A", "Wtot", 14, as_day=True)],
          description="The raw cumulative Wtot meter at each local midnight.", unit="litre",
          options={**BARS, "xField": "day"}, overrides=colors(["Wtot"]))
    p.add("Latest aggregates (revisions marked)", "table", 12, 8, 12, 40,
          [target("A", "/api/v1/aggregates", {"site": "$site", "last": "3"},
                  [col("day", "day", "string"), col("name", "aggregate", "string"), col("value", "value", "number"),
                   col("unit", "unit", "string"), col("count", "readings", "number"),
                   col("revision", "revision", "number")])],
          description="The newest daily aggregates; revision > 1 means revised after accepted late data.",
          overrides=[{"matcher": {"id": "byName", "options": "revision"}, "properties": [
              {"id": "custom.cellOptions", "value": {"type": "color-background"}},
              {"id": "thresholds", "value": {"mode": "absolute", "steps": [{"color": "transparent", "value": None},
                                                                           {"color": "orange", "value": 2}]}}]}],
          transformations=[{"id": "sortBy", "options": {"sort": [{"field": "day", "desc": True}]}}])
    p.add("Dead letters", "table", 24, 8, 0, 48,
          [target("A", "/api/v1/deadletters", {"last": "100"},
                  [col("at", "rejected at", "timestamp"), col("reason", "reason", "string"),
                   col("detail", "detail", "string"), col("source_topic", "source", "string"),
                   col("offset", "offset", "number"), col("payload", "payload", "string")])],
          description="Messages the pipeline could not accept, with the reason.",
          transformations=[{"id": "sortBy", "options": {"sort": [{"field": "rejected at", "desc": True}]}}])
    site_query = {"refId": "sites", "queryType": "infinity", "type": "json", "source": "url", "parser": "backend",
                  "format": "table", "url": "/api/v1/sites", "url_options": {"method": "GET", "data": ""},
                  "root_selector": "", "columns": [col("site", "site", "string")], "filters": []}
    return {
        "uid": DASHBOARD_UID, "title": "iotpipe - live", "tags": ["iotpipe"], "editable": False,
        "schemaVersion": 41, "graphTooltip": 1, "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "description": "The original's six panels plus every aggregate, W1/Wtot and dead letters. Queries ask the "
                       "bridge for the newest rows (simulated time): the panels follow the simulation by themselves.",
        "templating": {"list": [{
            "name": "site", "label": "site", "type": "query", "datasource": DS, "refresh": 1, "sort": 1,
            "query": {"queryType": "infinity", "query": "", "infinityQuery": site_query}, "definition": "sites",
            "includeAll": False, "multi": False, "current": {}, "options": []}]},
        "annotations": {"list": []}, "links": [], "panels": p.panels,
    }


def datasource_provisioning() -> str:
    return """# Grafana datasource provisioning for a plain Grafana (files under provisioning/ of a Grafana install).
# Grafana expands $IOTPIPE_BRIDGE_URL and $IOTPIPE_BRIDGE_TOKEN from its environment when it provisions.
# Plugin: yesoreyeram-infinity-datasource (Infinity, maintained by Grafana Labs; install it first).
apiVersion: 1
datasources:
  - name: iotpipe-bridge
    uid: iotpipe-bridge
    type: yesoreyeram-infinity-datasource
    access: proxy
    url: $IOTPIPE_BRIDGE_URL
    isDefault: true
    editable: false
    jsonData:
      allowedHosts:
        - $IOTPIPE_BRIDGE_URL
      httpHeaderName1: Authorization
    secureJsonData:
      httpHeaderValue1: Bearer $IOTPIPE_BRIDGE_TOKEN
"""


def dashboard_provider() -> str:
    return """# Grafana dashboard provider for a plain Grafana: loads dashboards/grafana/*.json (mount them at `path`).
apiVersion: 1
providers:
  - name: iotpipe
    folder: iotpipe
    type: file
    disableDeletion: true
    allowUiUpdates: false
    options:
      path: /var/lib/grafana/dashboards/iotpipe
"""


def indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "".join(pad + line if line.strip() else line for line in text.splitlines(keepends=True))


def configmaps(dashboard_json: str) -> str:
    """ConfigMaps for the Grafana community Helm chart's sidecars (sidecar.datasources / sidecar.dashboards)."""
    return (
        "# ConfigMaps for the Grafana Helm chart's sidecars (grafana/grafana chart: sidecar.dashboards.enabled and\n"
        "# sidecar.datasources.enabled). Apply them in Grafana's namespace; the bridge URL and the token come from\n"
        "# Grafana's environment (IOTPIPE_BRIDGE_URL, IOTPIPE_BRIDGE_TOKEN; e.g. envFromSecret). Generated by\n"
        "# dashboards/grafana/build.py: do not edit by hand.\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: iotpipe-grafana-datasource\n  labels:\n"
        "    grafana_datasource: \"1\"\ndata:\n  iotpipe-bridge.yaml: |\n"
        + indent(datasource_provisioning(), 4)
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: iotpipe-grafana-dashboard\n  labels:\n"
        "    grafana_dashboard: \"1\"\n  annotations:\n    grafana_folder: iotpipe\ndata:\n  iotpipe-live.json: |\n"
        + indent(dashboard_json, 4)
    )


def dashboard_json() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def outputs() -> dict[Path, str]:
    return {
        CHART_DASHBOARD: dashboard_json(),
        CHART_DATASOURCE: datasource_provisioning(),
        HERE / "provisioning" / "dashboards" / "iotpipe.yaml": dashboard_provider(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 when a generated file is out of date")
    parser.add_argument("--configmaps", action="store_true",
                        help="print the ConfigMaps for the Grafana Helm chart's sidecars (writes nothing)")
    args = parser.parse_args()
    if args.configmaps:
        sys.stdout.write(configmaps(dashboard_json()))
        return 0
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path.relative_to(REPO)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
