"""skaffold.yaml validates against skaffold's own JSON schema for its apiVersion.

The schema comes from the Go module proxy: the module github.com/GoogleContainerTools/skaffold/v2 carries
docs-v2/content/en/schemas/<version>.json; `go mod download -json` puts the module in the module cache.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonpatch
import jsonschema
import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD_MODULE = "github.com/GoogleContainerTools/skaffold/v2"
#: newest skaffold release the Go module proxy serves here; its newest schema is skaffold/v4beta13
SKAFFOLD_VERSION = "v2.16.1"


@pytest.fixture(scope="module")
def schemas_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("skaffold-mod")
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    proc = subprocess.run(
        ["go", "mod", "download", "-json", f"{SKAFFOLD_MODULE}@{SKAFFOLD_VERSION}"],
        cwd=work, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=900,
    )  # fmt: skip
    info = json.loads(proc.stdout) if proc.stdout.strip().startswith("{") else {}
    if proc.returncode != 0 or "Dir" not in info:
        pytest.fail(f"go mod download {SKAFFOLD_MODULE}@{SKAFFOLD_VERSION} failed: {info.get('Error')} {proc.stderr}")
    return Path(info["Dir"]) / "docs-v2" / "content" / "en" / "schemas"


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO_ROOT / "skaffold.yaml").read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def validator(schemas_dir: Path, config: dict[str, Any]) -> jsonschema.Draft7Validator:
    version = config["apiVersion"].removeprefix("skaffold/")
    path = schemas_dir / f"{version}.json"
    assert path.exists(), f"skaffold {SKAFFOLD_VERSION} has no schema {version}"
    return jsonschema.Draft7Validator(json.loads(path.read_text(encoding="utf-8")))


def version_key(name: str) -> tuple[int, int, int]:
    m = re.fullmatch(r"v(\d+)(alpha|beta)?(\d+)?", name)
    assert m, name
    stage = {"alpha": 0, "beta": 1, None: 2}[m.group(2)]
    return int(m.group(1)), stage, int(m.group(3) or 0)


def errors(validator: jsonschema.Draft7Validator, doc: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def test_api_version_is_the_newest_schema_of_the_skaffold_release(schemas_dir: Path, config: dict[str, Any]) -> None:
    versions = [p.stem for p in schemas_dir.glob("v*.json")]
    assert config["apiVersion"] == f"skaffold/{max(versions, key=version_key)}"
    assert config["kind"] == "Config"


def test_skaffold_yaml_validates(validator: jsonschema.Draft7Validator, config: dict[str, Any]) -> None:
    assert errors(validator, config) == []


def test_every_profile_applied_still_validates(validator: jsonschema.Draft7Validator, config: dict[str, Any]) -> None:
    assert config["profiles"], "a dev profile exists"
    assert any(p["name"] == "dev" for p in config["profiles"])
    for profile in config["profiles"]:
        base = {k: v for k, v in copy.deepcopy(config).items() if k != "profiles"}
        patched = jsonpatch.apply_patch(base, profile.get("patches", []))
        assert errors(validator, patched) == [], profile["name"]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda c: c["build"]["artifacts"][0].update(dockerFile="x"), "misspelt key"),
        (lambda c: c["deploy"]["helm"]["releases"][0].update(createNamespace="yes"), "string for a boolean"),
        (lambda c: c["build"].update(artifacts={"image": "x"}), "object for a list"),
        (lambda c: c["deploy"]["helm"]["releases"][0].pop("name"), "release without a name"),
    ],
)
def test_schema_rejects_broken_configs(
    validator: jsonschema.Draft7Validator, config: dict[str, Any], change: Any, why: str
) -> None:
    broken = copy.deepcopy(config)
    change(broken)
    assert errors(validator, broken), why


def test_artifacts_build_from_the_repo_root_and_feed_the_charts(config: dict[str, Any]) -> None:
    artifacts = config["build"]["artifacts"]
    images = {a["image"] for a in artifacts}
    assert images == {
        "iotpipe/operator",
        "iotpipe/stream-job",
        "iotpipe/hbase-sync",
        "iotpipe/ws-bridge",
        "iotpipe/simulator",
        "iotpipe/hbase",
    }
    for a in artifacts:
        assert a["context"] == "."
        assert (REPO_ROOT / a["docker"]["dockerfile"]).is_file(), f"{a['image']}: no {a['docker']['dockerfile']}"
    templates = " ".join(
        str(v) for r in config["deploy"]["helm"]["releases"] for v in r.get("setValueTemplates", {}).values()
    )
    for image in images:
        key = re.sub(r"[/\-.:]", "_", image)
        assert f"{{{{.IMAGE_REPO_{key}}}}}" in templates, image
        assert f"{{{{.IMAGE_TAG_{key}}}}}@{{{{.IMAGE_DIGEST_{key}}}}}" in templates, image
    for release in config["deploy"]["helm"]["releases"]:
        assert (REPO_ROOT / release["chartPath"] / "Chart.yaml").is_file()


def test_set_value_templates_name_real_chart_values(config: dict[str, Any]) -> None:
    """Every key skaffold sets exists in the chart's values.yaml (a typo would be rejected by the schema at deploy)."""
    for release in config["deploy"]["helm"]["releases"]:
        values = yaml.safe_load((REPO_ROOT / release["chartPath"] / "values.yaml").read_text(encoding="utf-8"))
        keys = [*release.get("setValueTemplates", {}), *release.get("setValues", {})]
        for profile in config["profiles"]:
            for op in profile.get("patches", []):
                if op["path"].startswith("/deploy/helm/releases/") and op["path"].endswith("/setValues"):
                    index = int(op["path"].split("/")[4])
                    if config["deploy"]["helm"]["releases"][index] is release:
                        keys += list(op["value"])
        for key in keys:
            node: Any = values
            for part in key.split("."):
                assert isinstance(node, dict) and part in node, f"{release['name']}: {key}"
                node = node[part]
