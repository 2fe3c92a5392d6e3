"""The Grafana dashboard of one pipeline (JSON model, provisioned by Grafana's sidecar from a ConfigMap). Pure."""

from __future__ import annotations

from typing import Any


def _panel(pid: int, title: str, expr: str, legend: str, x: int, y: int, unit: str = "short") -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "gridPos": {"x": x, "y": y, "w": 12, "h": 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [{"refId": "A", "expr": expr, "legendFormat": legend}],
    }


def dashboard(name: str, namespace: str, datasource_uid: str) -> dict[str, Any]:
    """Panels on the metrics the sync workers, the bridge and the operator export, scoped to this pipeline's pods."""
    sel = f'namespace="{namespace}", pod=~"{name}-.*"'
    panels = [
        _panel(1, "Bridge: records in (per s)", f"sum by (stream) (rate(iotpipe_bridge_records_in_total{{{sel}}}[5m]))",
               "{{stream}}", 0, 0),
        _panel(2, "Bridge: websocket connections", f"sum(iotpipe_bridge_connections{{{sel}}})", "connections", 12, 0),
        _panel(3, "Bridge: records dropped (per s)", f"sum(rate(iotpipe_bridge_records_dropped_total{{{sel}}}[5m]))",
               "dropped", 0, 8),
        _panel(4, "Bridge: history errors (per s)", f"sum(rate(iotpipe_bridge_history_errors_total{{{sel}}}[5m]))",
               "errors", 12, 8),
        _panel(5, "Operator: reconciles (per s)",
               f'sum by (result) (rate(iotpipeline_reconcile_total{{pipeline="{namespace}/{name}"}}[5m]))',
               "{{result}}", 0, 16),
        _panel(6, "Operator: reconcile duration (p95)",
               "histogram_quantile(0.95, sum by (le) (rate(iotpipeline_reconcile_seconds_bucket[5m])))",
               "p95", 12, 16, "s"),
    ]
    for p in panels:
        p["datasource"] = {"type": "prometheus", "uid": datasource_uid}
        for t in p["targets"]:
            t["datasource"] = {"type": "prometheus", "uid": datasource_uid}
    return {
        "uid": f"iotpipe-{namespace}-{name}"[:40],
        "title": f"iotpipe {namespace}/{name}",
        "tags": ["iotpipe"],
        "timezone": "browser",
        "schemaVersion": 39,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "panels": panels,
    }
