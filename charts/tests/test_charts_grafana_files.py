"""The Grafana dashboard and datasource are written once, into the platform chart (helm reads only files inside a
chart), by dashboards/grafana/build.py; dashboards/grafana/ links to them for a plain Grafana."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT / "dashboards" / "grafana"
CHART_FILES = REPO_ROOT / "charts" / "iotpipe-platform" / "files" / "grafana"
PAIRS = [
    (SOURCE / "provisioning" / "datasources", CHART_FILES / "datasources", "*.yaml"),
    (SOURCE, CHART_FILES / "dashboards", "*.json"),
]


@pytest.mark.parametrize(("links", "chart", "pattern"), PAIRS, ids=["datasources", "dashboards"])
def test_the_plain_grafana_files_are_links_to_the_chart_s(links: Path, chart: Path, pattern: str) -> None:
    names = sorted(p.name for p in chart.glob(pattern))
    assert names, f"nothing in {chart}"
    assert sorted(p.name for p in links.glob(pattern)) == names
    for name in names:
        assert (links / name).is_symlink(), f"{links / name} must be a link to {chart / name}"
        assert (links / name).resolve() == (chart / name).resolve()
