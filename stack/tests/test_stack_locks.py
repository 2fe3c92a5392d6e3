"""requirements/*.lock: each matches its inputs (offline), pins everything with hashes, and agrees with the others.

The digest check is what CI runs to know that `make lock` was run after requirements/*.txt or an extra changed.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from iotpipe_stack import locks

REPO_ROOT = Path(__file__).resolve().parents[2]
EXTRAS = ("simulator", "sync", "bridge", "operator")


def _read(name: str) -> str:
    return (REPO_ROOT / "requirements" / f"{name}.lock").read_text(encoding="utf-8")


def _blocks(text: str) -> list[str]:
    """One string per requirement: its line and its continuation (hash) lines, comments dropped."""
    blocks: list[str] = []
    for line in text.splitlines():
        bare = line.split("#", 1)[0].rstrip() if not line.lstrip().startswith("--hash") else line.strip()
        if not bare.strip():
            continue
        if line[:1].isspace() and blocks:
            blocks[-1] += " " + bare.strip()
        else:
            blocks.append(bare)
    return blocks


def _name(requirement: str) -> str:
    return re.sub(r"[-_.]+", "-", re.split(r"[=<>!~\[; ]", requirement, maxsplit=1)[0]).lower()


def _versions(text: str) -> dict[str, str]:
    return {_name(b): b.split("==", 1)[1].split()[0].rstrip("\\") for b in _blocks(text)}


def test_every_lock_matches_its_inputs() -> None:
    stale = [spec.path for spec in locks.stale(REPO_ROOT)]
    assert stale == [], f"stale locks {stale}: run `make lock` after editing requirements/*.txt or a pyproject extra"


@pytest.mark.parametrize("name", [spec.name for spec in locks.LOCKS])
def test_every_requirement_is_pinned_exactly_and_carries_hashes(name: str) -> None:
    blocks = _blocks(_read(name))
    assert blocks, f"{name}.lock holds no requirement"
    for block in blocks:
        assert re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+", block), f"not pinned with ==: {block[:80]}"
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), f"no sha256 hash: {block[:80]}"


@pytest.mark.parametrize("extra", EXTRAS)
def test_an_image_lock_holds_its_extra_at_the_versions_of_the_dev_lock(extra: str) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    wanted = {_name(r) for r in pyproject["project"]["optional-dependencies"][extra]}
    image, dev = _versions(_read(extra)), _versions(_read("dev"))
    assert wanted <= image.keys(), f"{extra}.lock lacks {sorted(wanted - image.keys())}"
    differ = {n: (v, dev.get(n)) for n, v in image.items() if dev.get(n) != v}
    assert differ == {}, f"{extra}.lock and dev.lock disagree (image, dev): {differ}"


def test_the_flink_lock_pins_apache_flink_and_its_whole_stack() -> None:
    wanted = next(line for line in (REPO_ROOT / "requirements/flink.txt").read_text().splitlines() if "==" in line)
    flink = _versions(_read("flink"))
    assert flink["apache-flink"] == wanted.split("==")[1].strip()
    # what apache-flink itself pulls in is locked too, not left to float
    assert {"apache-flink-libraries", "apache-beam", "py4j", "pemja", "pyarrow", "pandas", "numpy"} <= flink.keys()


def test_the_digest_follows_the_inputs_and_only_the_pins_an_image_lock_uses() -> None:
    spec = locks.LockSpec("sync", extra="sync", constraints="requirements/dev.txt")
    pyproject = '[project]\nname = "x"\n[project.optional-dependencies]\nsync = ["a", "b"]\nother = ["c"]\n'
    base = {"pyproject.toml": pyproject, "requirements/dev.txt": "a==1\nb==2\n"}
    locked = ["a", "b"]
    digest = locks.inputs_digest(spec, base, locked)
    assert locks.inputs_digest(spec, {**base, "pyproject.toml": pyproject + "[tool.x]\ny = 1\n"}, locked) == digest
    assert locks.inputs_digest(spec, {**base, "pyproject.toml": pyproject.replace('"c"', '"d"')}, locked) == digest
    assert locks.inputs_digest(spec, {**base, "requirements/dev.txt": "a==1\nb==2\nz==9\n"}, locked) == digest
    grown = pyproject.replace('"b"]', '"b", "e"]')
    assert locks.inputs_digest(spec, {**base, "pyproject.toml": grown}, locked) != digest
    assert locks.inputs_digest(spec, {**base, "requirements/dev.txt": "a==1\nb==3\n"}, locked) != digest


def test_the_header_records_the_digest_that_check_reads_back() -> None:
    spec = locks.LOCKS[0]
    text = locks.header(spec, "ab" * 32) + "x==1 \\\n    --hash=sha256:" + "0" * 64 + "\n"
    assert locks.recorded_digest(text) == "ab" * 32
    assert locks.recorded_digest("x==1\n") is None
    assert locks.pins(text) == {"x": "1"}


def test_check_names_a_stale_lock_and_fails(tmp_path: Path) -> None:
    (tmp_path / "requirements").mkdir()
    for spec in locks.LOCKS:
        for rel in filter(None, (spec.requirements, spec.constraints, spec.path)):
            (tmp_path / rel).write_text((REPO_ROOT / rel).read_text(encoding="utf-8"), encoding="utf-8")
    (tmp_path / "pyproject.toml").write_text((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert locks.stale(tmp_path) == []
    with (tmp_path / "requirements/flink.txt").open("a") as f:
        f.write("# a comment changes the input\n")
    assert [s.name for s in locks.stale(tmp_path)] == ["flink"]
