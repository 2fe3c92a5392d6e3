"""The CRDs live once, in the operator chart's crds/ (helm reads only files inside a chart); /crds holds links to
them, for `kubectl apply -f crds/` without helm."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
LINKS = REPO_ROOT / "crds"
COPY = REPO_ROOT / "charts" / "iotpipe-operator" / "crds"


def names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.suffix in {".yaml", ".yml"})


def test_every_crd_in_crds_is_a_link_to_the_chart_s_crd() -> None:
    assert names(COPY), "no CRD in the operator chart's crds/"
    assert names(LINKS) == names(COPY)
    for name in names(LINKS):
        assert (LINKS / name).is_symlink(), f"crds/{name} must be a link to charts/iotpipe-operator/crds/{name}"
        assert (LINKS / name).resolve() == (COPY / name).resolve()


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
    expected = [d for n in names(COPY) for d in yaml.safe_load_all((COPY / n).read_text("utf-8")) if d]
    assert rendered == expected
