"""`make lint` passes: ruff, mypy --strict and the import-linter contracts of pyproject.toml (iotcommon imports only
the standard library; services, simulators and the operator never import each other; the pure modules import no
client library or framework). CI runs exactly `make test`, so the lint runs here, as one test."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # a cold mypy cache on a loaded machine takes minutes
def test_make_lint_passes() -> None:
    result = subprocess.run(["make", "--no-print-directory", "lint"], cwd=ROOT, capture_output=True, text=True,
                            timeout=1700, check=False)
    assert result.returncode == 0, f"make lint failed:\n{result.stdout[-6000:]}\n{result.stderr[-4000:]}"
