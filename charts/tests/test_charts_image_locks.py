"""Each image installs its Python dependencies only from its own lock: requirements/<extra>.lock with --require-hashes.

The lock of an extra is compiled from that pyproject extra (stack/iotpipe_stack/locks.py, `make lock`), so an image
gets exactly what its extra names and nothing picked by hand from another list.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

#: Dockerfile -> the one lock it installs from (a pyproject extra, or the PyFlink stack for the stream job)
IMAGE_LOCKS = {
    "simulators/Dockerfile": "simulator",
    "services/hbase_sync/Dockerfile": "sync",
    "services/ws_bridge/Dockerfile": "bridge",
    "operator/Dockerfile": "operator",
    "services/stream_job/Dockerfile": "flink",
}


def _instructions(path: str) -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = (REPO_ROOT / path).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return [" ".join(i.split()) for i in "\n".join(lines).replace("\\\n", " ").splitlines() if i.strip()]


def _pip_installs(instruction: str) -> list[str]:
    return [part.strip() for part in instruction.split("&&") if re.search(r"\bpip3? install\b", part)]


def test_every_dockerfile_that_runs_pip_is_known_here() -> None:
    listed = subprocess.run(["git", "ls-files", "*Dockerfile"], cwd=REPO_ROOT, capture_output=True, text=True,
                            check=True).stdout.split()  # fmt: skip
    with_pip = {p for p in listed if any(_pip_installs(i) for i in _instructions(p))}
    assert with_pip == set(IMAGE_LOCKS)


@pytest.mark.parametrize(("dockerfile", "lock"), sorted(IMAGE_LOCKS.items()))
def test_an_image_installs_only_from_its_own_lock_with_hashes(dockerfile: str, lock: str) -> None:
    instructions = _instructions(dockerfile)
    copied = [i.split()[1] for i in instructions if i.startswith("COPY ") and "requirements/" in i]
    assert copied == [f"requirements/{lock}.lock"], f"{dockerfile} copies {copied}"
    installs = [p for i in instructions if i.startswith("RUN ") for p in _pip_installs(i)]
    assert installs, f"{dockerfile} installs nothing with pip"
    for install in installs:
        assert "--require-hashes" in install, install
        files = re.findall(r"(?:^|\s)(?:-r|--requirement)\s+(\S+)", install)
        assert [Path(f).name for f in files] == [f"{lock}.lock"], install
        assert not re.search(r"(?:^|\s)(-c|--constraint|-e|--editable)\s", install), install
        assert install.endswith(files[0]), f"a package named outside the lock: {install}"


@pytest.mark.parametrize("lock", sorted(set(IMAGE_LOCKS.values()) - {"flink"}))
def test_the_lock_of_an_image_is_compiled_from_its_extra(lock: str) -> None:
    head = (REPO_ROOT / "requirements" / f"{lock}.lock").read_text(encoding="utf-8").splitlines()[:3]
    assert any(f'pyproject.toml extra "{lock}"' in line for line in head), head
