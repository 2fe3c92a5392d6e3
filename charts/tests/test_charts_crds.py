"""The operator chart ships the CRDs of /crds (the source of truth) byte for byte, in its crds/ directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SOURCE = REPO_ROOT / "crds"
COPY = REPO_ROOT / "charts" / "iotpipe-operator" / "crds"
FIX = "make chart-crds"


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.suffix in {".yaml", ".yml"})


def test_chart_crds_are_the_same_files_as_the_source_of_truth() -> None:
    assert names(SOURCE), "no CRD in crds/"
    assert names(COPY) == names(SOURCE), f"the chart's crds/ differs from crds/; run: {FIX}"
    for name in names(SOURCE):
        assert (COPY / name).read_bytes() == (SOURCE / name).read_bytes(), f"{name} differs; run: {FIX}"


def test_chart_crds_are_plain_crds_not_templates() -> None:
    """helm installs crds/ verbatim (never templated): no template syntax may hide in them."""
    for name in names(COPY):
        text = (COPY / name).read_text(encoding="utf-8")
        assert "{{" not in text, name
        docs: list[dict[str, Any]] = [d for d in yaml.safe_load_all(text) if d]
        assert docs
        for d in docs:
            assert d["apiVersion"] == "apiextensions.k8s.io/v1"
            assert d["kind"] == "CustomResourceDefinition"


@pytest.mark.helm
def test_helm_renders_the_crds_with_include_crds(helm: Any) -> None:
    res = helm.template("iotpipe-operator", include_crds=True)
    assert res.returncode == 0, res.output
    rendered = [d for d in yaml.safe_load_all(res.stdout) if d and d["kind"] == "CustomResourceDefinition"]
    expected = [d for n in names(SOURCE) for d in yaml.safe_load_all((SOURCE / n).read_text("utf-8")) if d]
    assert rendered == expected
