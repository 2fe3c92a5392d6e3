"""What the image builds take from this machine: the Debian rootfs (debootstrap, cached), the host's apt mirror, npm
registry and extra CA certificates, the files a Dockerfile copies, and the Flink distribution of .venv-flink."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack import image_specs as specs
from iotpipe_stack.install import file_lock
from iotpipe_stack.podman import run
from iotpipe_stack.settings import REPO_ROOT


def host_apt_mirror() -> str:
    """The Debian mirror this machine's apt uses for the stand-ins' suite (IOTPIPE_DEBIAN_MIRROR overrides it)."""
    texts = []
    for path in (Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*.sources")),
                 *sorted(Path("/etc/apt/sources.list.d").glob("*.list"))):  # fmt: skip
        if path.is_file():
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    mirror = specs.apt_mirror(texts, specs.DEBIAN_SUITE)
    if mirror is None:
        raise StackError(f"no apt source for Debian {specs.DEBIAN_SUITE} in /etc/apt: set IOTPIPE_DEBIAN_MIRROR")
    return mirror


def npm_registry() -> str:
    """The npm registry the host's npm client uses (the node stand-in fetches npm itself from it)."""
    npm = shutil.which("npm")
    if npm is None:
        raise StackError("npm is not on PATH: the node stand-in fetches npm from the registry the host's npm uses")
    out = subprocess.run([npm, "config", "get", "registry"], capture_output=True, text=True, check=False)
    registry = out.stdout.strip()
    if out.returncode != 0 or not registry.startswith(("http://", "https://")):
        raise StackError(f"`npm config get registry` gave {registry or out.stderr.strip()!r}")
    return registry.rstrip("/")


def debian_rootfs(cache: Path, mirror: str, progress: Callable[[str], None]) -> Path:
    """The cached Debian bookworm minbase rootfs tarball (debootstrap on first use)."""
    tarball = cache / "images" / f"debian-{specs.DEBIAN_SUITE}-minbase.tar"
    if tarball.exists():
        return tarball
    with file_lock(cache / "images" / ".debootstrap.lock"):
        if tarball.exists():
            return tarball
        if shutil.which("debootstrap") is None:
            raise StackError("debootstrap is not installed: `apt-get install -y debootstrap` (the Makefile does it)")
        progress(f"debootstrap {specs.DEBIAN_SUITE} (minbase) from {mirror} -> {tarball} (first run only)")
        with tempfile.TemporaryDirectory(prefix="rootfs-", dir=tarball.parent) as tmp:
            root = Path(tmp) / "rootfs"
            run(["debootstrap", "--variant=minbase", specs.DEBIAN_SUITE, str(root), mirror], "debootstrap")
            security = mirror.rstrip("/").rsplit("/", 1)[0] + "/debian-security"
            (root / "etc" / "apt" / "sources.list").write_text(
                f"deb {mirror} {specs.DEBIAN_SUITE} main\n"
                f"deb {mirror} {specs.DEBIAN_SUITE}-updates main\n"
                f"deb {security} {specs.DEBIAN_SUITE}-security main\n",
                encoding="utf-8",
            )
            for leftovers in (root / "var" / "cache" / "apt" / "archives", root / "var" / "lib" / "apt" / "lists"):
                for f in leftovers.glob("*"):
                    if f.is_file():
                        f.unlink()
            partial = tarball.with_suffix(".partial")
            run(["tar", "-C", str(root), "--numeric-owner", "-cf", str(partial), "."], "tar of the rootfs")
            partial.rename(tarball)
    return tarball


def site_certificates(ca_dir: Path) -> list[Path]:
    """The host's extra trust anchors (*.crt), which the stand-ins need to reach PyPI/Maven/npm through its proxy."""
    return sorted(p for p in ca_dir.glob("*.crt") if p.is_file()) if ca_dir.is_dir() else []


def context_files(sources: Sequence[str]) -> list[Path]:
    """Every file under the given build-context paths (globs allowed), minus caches and tests."""
    files: list[Path] = []
    for src in sources:
        for match in sorted(REPO_ROOT.glob(src.rstrip("/"))):
            candidates = [match] if match.is_file() else sorted(p for p in match.rglob("*") if p.is_file())
            files += [f for f in candidates if not specs.ignored_by_default(str(f.relative_to(REPO_ROOT)))]
    return files


#: the parts of the wheel's Flink distribution that make /opt/flink (log/ is created empty: local runs write there)
FLINK_DIST_PARTS = ("bin", "lib", "opt", "conf", "plugins", "licenses")


def flink_distribution(flink_venv: Path) -> Path:
    """pyflink/ inside the PyFlink venv: bin, lib, opt, conf, plugins, log, licenses of the Flink distribution."""
    found = sorted(flink_venv.glob("lib/python3*/site-packages/pyflink"))
    if not found or not (found[0] / "lib").is_dir():
        raise StackError(f"no PyFlink distribution in {flink_venv} (run `make setup`)")
    return found[0]


def stage_flink_context(dist: Path, work: Path) -> Path:
    """A build context for images/base/flink: the distribution as flink/ (hard links when possible) + entrypoint."""
    ctx = work / "flink-context"
    if ctx.exists():
        shutil.rmtree(ctx)
    (ctx / "flink").mkdir(parents=True)
    for part in FLINK_DIST_PARTS:
        src = dist / part
        if src.is_dir():
            try:
                shutil.copytree(src, ctx / "flink" / part, copy_function=os.link)
            except OSError:
                shutil.rmtree(ctx / "flink" / part, ignore_errors=True)
                shutil.copytree(src, ctx / "flink" / part)
    (ctx / "flink" / "log").mkdir(exist_ok=True)
    base_dir = REPO_ROOT / "images" / "base" / "flink"
    for f in base_dir.iterdir():
        if f.is_file() and f.name != "Containerfile":
            shutil.copy2(f, ctx / f.name)
    return ctx


def flink_fingerprint(dist: Path) -> bytes:
    """The distribution's file list with sizes (hashing 300 MB of jars on every run is not needed)."""
    files = [p for part in FLINK_DIST_PARTS for p in sorted((dist / part).rglob("*"))]
    lines = [f"{p.relative_to(dist)} {p.stat().st_size}" for p in files
             if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]  # fmt: skip
    return "\n".join(lines).encode()
