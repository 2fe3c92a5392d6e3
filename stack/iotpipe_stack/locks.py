"""Lock files with hashes: `make lock` writes them, `make setup`, the PyFlink venv and the images install from them.

Each lock under requirements/ is compiled by uv (`uv pip compile --generate-hashes`, Python 3.11 on x86_64 Linux: the
images' and CI's platform) from its inputs, and records the SHA-256 of those inputs in its header. Checking a lock is
then offline and cheap: a lock is stale when its recorded digest differs from the digest of its inputs today. The
inputs of an image's lock are its extra and the dev.txt pins of the packages in that lock (not the whole of dev.txt):
a package added to dev.txt for the tests neither stales nor rewrites an image's lock, so the image is not rebuilt.

    dev.lock                    the main venv .venv          from requirements/dev.txt
    flink.lock                  the PyFlink venv .venv-flink  from requirements/flink.txt (apache-flink's whole stack)
    simulator|sync|bridge|operator.lock                       from the pyproject extra of that name, constrained by
                                                              requirements/dev.txt (the same versions as .venv)

    python -m iotpipe_stack.locks            re-lock the stale locks (network: the package index)
    python -m iotpipe_stack.locks --all      re-lock every lock
    python -m iotpipe_stack.locks --check    list the stale locks; exit 1 if any (offline)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

from iotpipe_stack.settings import REPO_ROOT

PYTHON_VERSION = "3.11"
PLATFORM = "x86_64-unknown-linux-gnu"
DIGEST_LINE = "# inputs-sha256: "
_FORMAT = "iotpipe-lock-1"  # part of every digest: a change to how locks are made re-locks them all


@dataclass(frozen=True)
class LockSpec:
    """One lock file: requirements/<name>.lock, compiled from a requirements file or a pyproject extra."""

    name: str
    requirements: str | None = None  # a requirements file (repository-relative)
    extra: str | None = None  # or an extra of pyproject.toml, constrained by `constraints`
    constraints: str | None = None

    @property
    def path(self) -> str:
        return f"requirements/{self.name}.lock"

    def describe(self) -> str:
        if self.extra is not None:
            return f'pyproject.toml extra "{self.extra}", constrained by {self.constraints}'
        return f"{self.requirements}"


LOCKS: tuple[LockSpec, ...] = (
    LockSpec("dev", requirements="requirements/dev.txt"),
    LockSpec("flink", requirements="requirements/flink.txt"),
    *(LockSpec(e, extra=e, constraints="requirements/dev.txt") for e in ("simulator", "sync", "bridge", "operator")),
)


def extra_requirements(pyproject_text: str, extra: str) -> list[str]:
    """The requirement strings of one extra of pyproject.toml."""
    extras = tomllib.loads(pyproject_text)["project"]["optional-dependencies"]
    if extra not in extras:
        raise KeyError(f"pyproject.toml has no extra {extra!r}")
    return [str(r) for r in extras[extra]]


def inputs_digest(spec: LockSpec, read: dict[str, str], locked: Collection[str]) -> str:
    """SHA-256 of what a lock is made from. Pure.

    `read`: repository-relative path -> text of the inputs; `locked`: the (normalised) names of the packages in the
    lock: of the constraints file, only their pins count.
    """
    h = hashlib.sha256(_FORMAT.encode())
    if spec.requirements is not None:
        h.update(b"\0requirements\0" + read[spec.requirements].encode())
    if spec.extra is not None:
        deps = extra_requirements(read["pyproject.toml"], spec.extra)
        h.update(b"\0extra\0" + json.dumps(sorted(deps)).encode())
    if spec.constraints is not None:
        wanted = set(locked)
        relevant = {n: v for n, v in pins(read[spec.constraints]).items() if n in wanted}
        h.update(b"\0constraints\0" + json.dumps(sorted(relevant.items())).encode())
    return h.hexdigest()


def recorded_digest(lock_text: str) -> str | None:
    """The inputs digest written in a lock's header, or None."""
    for line in lock_text.splitlines():
        if line.startswith(DIGEST_LINE):
            return line[len(DIGEST_LINE) :].strip()
    return None


def header(spec: LockSpec, digest: str) -> str:
    return (
        f"# {spec.path}: written by `make lock` (python -m iotpipe_stack.locks); do not edit by hand.\n"
        f"# from: {spec.describe()}; Python {PYTHON_VERSION}, {PLATFORM}; install with pip --require-hashes\n"
        f"{DIGEST_LINE}{digest}\n"
    )


_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;\\]+)")


def pins(lock_text: str) -> dict[str, str]:
    """Normalised package name -> version of every requirement line of a lock."""
    found: dict[str, str] = {}
    for line in lock_text.splitlines():
        m = _PIN.match(line)
        if m:
            found[normalise(m.group(1))] = m.group(2)
    return found


def normalise(name: str) -> str:
    """PEP 503 name normalisation (PyYAML == pyyaml, typing_extensions == typing-extensions)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ---- I/O edge ----


def _inputs(spec: LockSpec, root: Path) -> dict[str, str]:
    paths = [p for p in (spec.requirements, spec.constraints) if p] + (["pyproject.toml"] if spec.extra else [])
    return {p: (root / p).read_text(encoding="utf-8") for p in paths}


def stale(root: Path = REPO_ROOT) -> list[LockSpec]:
    """The locks that are missing or whose recorded inputs digest is not today's (offline)."""
    out = []
    for spec in LOCKS:
        lock = root / spec.path
        text = lock.read_text(encoding="utf-8") if lock.exists() else ""
        if not text or recorded_digest(text) != inputs_digest(spec, _inputs(spec, root), pins(text)):
            out.append(spec)
    return out


def compile_lock(spec: LockSpec, root: Path = REPO_ROOT) -> None:
    """Compile one lock with uv (from the package index) and write it with its header."""
    source = spec.requirements if spec.requirements is not None else "pyproject.toml"
    argv = [sys.executable, "-m", "uv", "pip", "compile", source, "--generate-hashes", "--no-header", "--quiet",
            "--native-tls", "--python-version", PYTHON_VERSION, "--python-platform", PLATFORM]  # fmt: skip
    if spec.extra is not None:
        argv += ["--extra", spec.extra, "--no-emit-package", "iotpipe"]
    if spec.constraints is not None:
        argv += ["--constraint", spec.constraints]
    with tempfile.TemporaryDirectory(prefix="iotpipe-lock-") as tmp:
        out = Path(tmp, "out.txt")
        proc = subprocess.run([*argv, "--output-file", str(out)], cwd=root, capture_output=True, text=True,
                              check=False, stdin=subprocess.DEVNULL)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"uv pip compile failed for {spec.path}:\n{proc.stdout}{proc.stderr}")
        body = out.read_text(encoding="utf-8")
    digest = inputs_digest(spec, _inputs(spec, root), pins(body))
    (root / spec.path).write_text(header(spec, digest) + body, encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iotpipe_stack.locks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--check", action="store_true", help="list the stale locks and exit 1 if any (offline)")
    parser.add_argument("--all", action="store_true", help="re-lock every lock, not only the stale ones")
    args = parser.parse_args(argv)
    todo = stale()
    if args.check:
        for spec in todo:
            print(f"stale: {spec.path} (inputs: {spec.describe()}); run `make lock`")
        return 1 if todo else 0
    for spec in LOCKS if args.all else todo:
        print(f"locking {spec.path} from {spec.describe()}", flush=True)
        compile_lock(spec)
    print(f"{len(LOCKS if args.all else todo)} lock(s) written; {len(LOCKS)} in requirements/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
