"""The podman commands `make images` uses (always with runc and explicit ulimits: crun fails on this cgroups-v1 hybrid
host, and podman's default rlimits exceed the VM's hard limits), the load of its images into a containerd (podman save
+ ctr import), and the one way to run a build tool here."""

from __future__ import annotations

import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack.image_specs import INPUTS_LABEL


def run(cmd: Sequence[str], what: str) -> str:
    """Run a command; its output, or StackError with the tail of it on failure."""
    proc = subprocess.run(list(cmd), capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise StackError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd[:4])} ...\n{tail}")
    return proc.stdout


def podman_ulimits() -> list[str]:
    """Explicit --ulimit flags within this host's hard limits (podman's defaults exceed them in this VM).

    nproc stays at 32768 at most: on this VM runc is refused a higher RLIMIT_NPROC even below the shell's hard limit.
    """
    flags = []
    for name, res, ceiling in (("nofile", resource.RLIMIT_NOFILE, 1048576), ("nproc", resource.RLIMIT_NPROC, 32768)):
        hard = resource.getrlimit(res)[1]
        value = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling)
        flags += ["--ulimit", f"{name}={value}:{value}"]
    return flags


class Podman:
    """The podman commands used here, always with runc (crun fails on cgroups v1 hybrid) and explicit ulimits."""

    def __init__(self) -> None:
        exe = shutil.which("podman")
        if exe is None:
            raise StackError("podman is not installed: `apt-get install -y podman runc` (the Makefile does it)")
        if shutil.which("runc") is None:
            raise StackError("runc is not installed: `apt-get install -y runc` (crun does not work on this host)")
        self.exe = exe

    def cmd(self, *args: str) -> list[str]:
        return [self.exe, "--runtime", "runc", *args]

    def image_id(self, ref: str) -> str | None:
        proc = subprocess.run(self.cmd("image", "inspect", "--format", "{{.Id}}", ref),
                              capture_output=True, text=True, check=False)  # fmt: skip
        return proc.stdout.strip() or None if proc.returncode == 0 else None

    def label(self, ref: str, key: str) -> str | None:
        fmt = "{{ index .Config.Labels \"" + key + "\" }}"
        proc = subprocess.run(self.cmd("image", "inspect", "--format", fmt, ref),
                              capture_output=True, text=True, check=False)  # fmt: skip
        value = proc.stdout.strip()
        return value if proc.returncode == 0 and value and value != "<no value>" else None

    def size(self, ref: str) -> int:
        out = run(self.cmd("image", "inspect", "--format", "{{.Size}}", ref), f"inspecting {ref}")
        return int(out.strip() or 0)

    def build(self, ref: str, containerfile: Path, context: Path, build_args: Mapping[str, str], digest: str,
              log: Path) -> None:  # fmt: skip
        cmd = self.cmd(
            "build", "--runtime", "runc", *podman_ulimits(), "--pull=never", "--layers",
            "-f", str(containerfile), "-t", ref, "--label", f"{INPUTS_LABEL}={digest}",
            *[f"--build-arg={k}={v}" for k, v in sorted(build_args.items())], str(context),
        )  # fmt: skip
        previous = self.image_id(ref)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w", encoding="utf-8") as out:
            out.write(" ".join(cmd) + "\n")
            out.flush()
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            tail = "\n".join(log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-30:])
            raise StackError(f"podman build of {ref} failed (exit {proc.returncode}); full log {log}\n{tail}")
        if previous and previous != self.image_id(ref):
            # the version this build replaced: removed unless a container or another image still uses it, so
            # repeated builds do not fill the disk (podman's stage cache stays)
            subprocess.run(self.cmd("rmi", previous), capture_output=True, check=False, stdin=subprocess.DEVNULL)

    def import_tarball(self, tarball: Path, ref: str, digest: str) -> None:
        changes = ["ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "ENV LANG=C.UTF-8",
                   'CMD ["bash"]', f"LABEL {INPUTS_LABEL}={digest}"]  # fmt: skip
        args = [a for c in changes for a in ("--change", c)]
        run(self.cmd("import", *args, str(tarball), ref), f"podman import of {tarball}")


def _import(base: list[str], archive: Path, ref: str, progress: Callable[[str], None]) -> None:
    """ctr import, once more after a failure: an import into a containerd that had imported earlier images failed
    once with "parent snapshot ... does not exist" (CI, 30 Nov) and went through when run again."""
    try:
        run([*base, "images", "import", str(archive)], f"ctr import {ref}")
    except StackError as exc:
        progress(f"{exc}; importing again")
        time.sleep(2.0)
        run([*base, "images", "import", str(archive)], f"ctr import {ref}")


def load_into_containerd(podman: Podman, refs: Sequence[str], address: str, namespace: str, work: Path,
                         progress: Callable[[str], None]) -> None:
    """podman save each image and import it with ctr into the node's containerd (skipped when already there)."""
    ctr = shutil.which("ctr")
    if ctr is None:
        raise StackError("ctr (from Debian's containerd package) is not installed; it is needed to load images")
    base = [ctr, "--address", address, "--namespace", namespace]
    present = set(run([*base, "images", "list", "--quiet"], "ctr images list").split())
    stamps = work / "loaded" / re.sub(r"[^A-Za-z0-9]+", "_", address.strip("/"))
    stamps.mkdir(parents=True, exist_ok=True)
    for ref in refs:
        started = time.monotonic()
        image_id = podman.image_id(ref) or ""
        stamp = stamps / re.sub(r"[^A-Za-z0-9.-]+", "_", ref)
        if ref in present and stamp.exists() and stamp.read_text(encoding="utf-8") == image_id:
            progress(f"{ref}: already in containerd ({address})")
            continue
        with tempfile.TemporaryDirectory(prefix="save-", dir=work) as tmp:
            archive = Path(tmp) / "image.tar"
            run(podman.cmd("save", "--format", "docker-archive", "-o", str(archive), ref), f"podman save {ref}")
            _import(base, archive, ref, progress)
        stamp.write_text(image_id, encoding="utf-8")
        secs = time.monotonic() - started
        progress(f"{ref}: loaded into containerd ({address}, namespace {namespace}) in {secs:.1f}s")
