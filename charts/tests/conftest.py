"""Fixtures of the chart, image and skaffold tests.

helm        a Helm wrapper around the real helm binary, built from the Go module proxy by stack/kube/build-helm.sh
            (cached in $IOTPIPE_CACHE/bin); a build failure fails the test
repo_root   the checkout
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHARTS = ("iotpipe-operator", "iotpipe-platform")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass(frozen=True)
class Helm:
    """The real helm binary, run with a private HOME-like environment so no user config leaks in."""

    binary: Path
    env: Mapping[str, str]

    def run(self, args: Sequence[str]) -> Result:
        proc = subprocess.run(
            [str(self.binary), *args],
            capture_output=True,
            text=True,
            env=dict(self.env),
            cwd=REPO_ROOT,
            check=False,
            stdin=subprocess.DEVNULL,
            timeout=300,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def template(
        self,
        chart: str,
        *,
        values: Sequence[Path] = (),
        release: str = "t",
        namespace: str = "iotpipe-test",
        include_crds: bool = False,
        extra: Sequence[str] = (),
    ) -> Result:
        args = ["template", release, str(REPO_ROOT / "charts" / chart), "--namespace", namespace]
        for v in values:
            args += ["--values", str(v)]
        if include_crds:
            args.append("--include-crds")
        return self.run([*args, *extra])

    def render(self, chart: str, **kwargs: Any) -> list[dict[str, Any]]:
        """`helm template` that must succeed; returns the parsed manifests (empty documents dropped)."""
        res = self.template(chart, **kwargs)
        assert res.returncode == 0, f"helm template {chart} failed:\n{res.output}"
        return [d for d in yaml.safe_load_all(res.stdout) if d]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Helm]:
    script = REPO_ROOT / "stack" / "kube" / "build-helm.sh"
    proc = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=1800
    )
    if proc.returncode != 0:
        pytest.fail(f"building helm with {script} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    binary = Path(proc.stdout.strip().splitlines()[-1])
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    yield Helm(binary, env)
