"""The platform chart ships the Grafana files of dashboards/grafana/ (the source of truth, written by
dashboards/grafana/build.py) byte for byte: helm can only read files inside the chart, so the chart keeps copies."""

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


@pytest.mark.parametrize(("source", "copy", "pattern"), PAIRS, ids=["datasources", "dashboards"])
def test_chart_copies_are_identical_to_the_source(source: Path, copy: Path, pattern: str) -> None:
    fix = f"cp {source.relative_to(REPO_ROOT)}/{pattern} {copy.relative_to(REPO_ROOT)}/"
    names = sorted(p.name for p in source.glob(pattern))
    assert names, f"nothing in {source}"
    assert sorted(p.name for p in copy.glob(pattern)) == names, f"run: {fix}"
    for name in names:
        assert (copy / name).read_bytes() == (source / name).read_bytes(), f"{name} differs; run: {fix}"
