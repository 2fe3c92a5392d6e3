"""values.schema.json: the defaults and the non-default cases pass, every bad values file is rejected by helm.

Each file in charts/tests/bad-values/<chart>/ starts with `# why: ...` and `# expect: <text>`: helm must refuse to
render the chart with it and say <text> (the failing key's path, from helm's schema check, or the template's message).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

pytestmark = pytest.mark.helm

REPO_ROOT = Path(__file__).resolve().parents[2]
CHARTS = ("iotpipe-operator", "iotpipe-platform")
BAD = sorted((REPO_ROOT / "charts" / "tests" / "bad-values").glob("*/*.yaml"))
GOOD = sorted((REPO_ROOT / "charts" / "tests" / "values").glob("*.yaml"))


def header(path: Path, key: str) -> str:
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"# {key}: "):
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"{path} has no '# {key}:' line")


def schema(chart: str) -> dict[str, Any]:
    return dict(json.loads((REPO_ROOT / "charts" / chart / "values.schema.json").read_text(encoding="utf-8")))


def test_there_are_several_bad_values_files_per_chart() -> None:
    for chart in CHARTS:
        assert len([p for p in BAD if p.parent.name == chart]) >= 5, chart


@pytest.mark.parametrize("chart", CHARTS)
def test_schema_is_valid_draft7_and_closed(chart: str) -> None:
    s = schema(chart)
    jsonschema.Draft7Validator.check_schema(s)
    assert s["additionalProperties"] is False, "unknown top-level keys are errors"


@pytest.mark.parametrize("chart", CHARTS)
def test_default_values_satisfy_the_schema(chart: str) -> None:
    values = yaml.safe_load((REPO_ROOT / "charts" / chart / "values.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(schema(chart)).validate(values)


@pytest.mark.parametrize("values_file", GOOD, ids=lambda p: p.stem)
def test_non_default_values_satisfy_the_schema(values_file: Path) -> None:
    chart = values_file.name.split(".")[0]
    jsonschema.Draft7Validator(schema(chart)).validate(yaml.safe_load(values_file.read_text(encoding="utf-8")))


@pytest.mark.parametrize("bad", BAD, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_helm_rejects_bad_values(helm: Any, bad: Path) -> None:
    chart = bad.parent.name
    res = helm.template(chart, values=[bad])
    assert res.returncode != 0, f"helm accepted {bad.name} ({header(bad, 'why')})"
    assert header(bad, "expect") in res.stderr, res.stderr
    if "template check" not in header(bad, "why"):  # helm lint reports a template's fail() only as [INFO]
        lint = helm.run(["lint", str(REPO_ROOT / "charts" / chart), "--values", str(bad)])
        assert lint.returncode != 0, f"helm lint accepted {bad.name}"


def test_every_documented_value_is_in_the_schema() -> None:
    """Each key of values.yaml has a schema property (so additionalProperties: false cannot reject a default)."""

    def walk(values: Any, node: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
        if "$ref" in node:
            node = defs[node["$ref"].rsplit("/", 1)[1]]
        props = node.get("properties")
        if not isinstance(values, dict) or props is None:
            return []
        missing = []
        for key, value in values.items():
            if key not in props:
                if node.get("additionalProperties") is False:
                    missing.append(f"{path}{key}")
                continue
            missing += walk(value, props[key], defs, f"{path}{key}.")
        return missing

    for chart in CHARTS:
        s = schema(chart)
        values = yaml.safe_load((REPO_ROOT / "charts" / chart / "values.yaml").read_text(encoding="utf-8"))
        assert walk(values, s, s["definitions"], "") == [], chart


def undocumented_keys(text: str) -> list[str]:
    """Leaf keys of a values file with no comment above them nor above their enclosing block's header."""
    lines = text.splitlines()

    def indent(line: str) -> int:
        return len(line) - len(line.lstrip())

    def commented(j: int) -> bool:
        return j > 0 and lines[j - 1].strip().startswith("#")

    missing = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", "-")) or ":" not in stripped or stripped.endswith(":"):
            continue  # comments, list items, block headers
        if commented(i):
            continue
        parent = next((j for j in range(i - 1, -1, -1) if lines[j].strip() and indent(lines[j]) < indent(line)), None)
        if parent is not None and commented(parent):
            continue  # a documented group, e.g. podSecurityContext's fields
        missing.append(f"line {i + 1}: {stripped}")
    return missing


def test_undocumented_keys_finds_a_bare_key() -> None:
    assert undocumented_keys("# -- documented\na: 1\nb: 2\n") == ["line 3: b: 2"]
    assert undocumented_keys("# -- group\ng:\n  x: 1\n  y: 2\n") == []


@pytest.mark.parametrize("chart", CHARTS)
def test_every_value_is_documented(chart: str) -> None:
    text = (REPO_ROOT / "charts" / chart / "values.yaml").read_text(encoding="utf-8")
    assert undocumented_keys(text) == []
