"""What the local cluster runs, made ready before it starts: the Kubernetes node binaries (built once per version from
the Go module proxy by stack/kube/build-cluster.sh, cached in $IOTPIPE_CACHE/bin), the Debian packages the node needs
(apt-get), and the archives of its local images (pause, busybox, coredns). iotpipe_stack.cluster starts it all."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack.cluster_addons import local_images
from iotpipe_stack.kube import K8S_VERSION, KubeBinaries, cache_dir, ensure_binaries
from iotpipe_stack.settings import REPO_ROOT
from iotpipe_stack.tiny_images import write_archive

COREDNS_VERSION = os.environ.get("IOTPIPE_COREDNS_VERSION", "1.15.0")
BUILD_SCRIPT = REPO_ROOT / "stack" / "kube" / "build-cluster.sh"
BUSYBOX = Path("/bin/busybox")
#: Debian packages the node needs, and a file each one installs
PREREQUISITES: Mapping[str, str] = {
    "containerd": "/usr/bin/containerd",
    "runc": "/usr/sbin/runc",
    "containernetworking-plugins": "/usr/lib/cni/bridge",
    "iptables": "/usr/sbin/iptables",
    "conntrack": "/usr/sbin/conntrack",
    "busybox-static": str(BUSYBOX),
}

Progress = Callable[[str], None]


def print_progress(msg: str) -> None:
    print(f"[cluster {time.strftime('%H:%M:%S')}] {msg}", flush=True)


@dataclass(frozen=True)
class ClusterBinaries:
    kube: KubeBinaries
    kubelet: Path
    controller_manager: Path
    scheduler: Path
    proxy: Path
    coredns: Path

    @classmethod
    def in_cache(cls, cache: Path) -> ClusterBinaries:
        b = cache / "bin"
        v = f"v{K8S_VERSION}"
        return cls(KubeBinaries.in_cache(cache), b / f"kubelet-{v}", b / f"kube-controller-manager-{v}",
                   b / f"kube-scheduler-{v}", b / f"kube-proxy-{v}", b / f"coredns-v{COREDNS_VERSION}")

    def missing(self) -> list[Path]:
        mine = [self.kubelet, self.controller_manager, self.scheduler, self.proxy, self.coredns]
        return self.kube.missing() + [p for p in mine if not os.access(p, os.X_OK)]


def ensure_cluster_binaries(cache: Path | None = None, build: bool = True,
                            progress: Progress = print_progress) -> ClusterBinaries:
    """The cached binaries; builds the missing ones with stack/kube/build-cluster.sh (minutes, once per version),
    relaying its timed progress lines."""
    cache = cache or cache_dir()
    bins = ClusterBinaries.in_cache(cache)
    if not bins.missing():
        return bins
    if not build:
        raise StackError(f"missing {', '.join(map(str, bins.missing()))}: run `make cluster-tools` ({BUILD_SCRIPT})")
    if bins.kube.missing():
        ensure_binaries(cache, progress=progress)
    progress(f"building kubelet, kube-controller-manager, kube-scheduler, kube-proxy v{K8S_VERSION} and coredns "
             f"v{COREDNS_VERSION} from the Go module proxy (first time only; {BUILD_SCRIPT})")
    env = {**os.environ, "IOTPIPE_CACHE": str(cache), "IOTPIPE_K8S_VERSION": K8S_VERSION,
           "IOTPIPE_COREDNS_VERSION": COREDNS_VERSION}
    lines: list[str] = []
    with subprocess.Popen(["bash", str(BUILD_SCRIPT)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if line.startswith("[cluster-tools") or line.startswith("[kube-tools"):
                progress(line.rstrip())
    if proc.returncode != 0 or bins.missing():
        raise StackError(f"building the cluster binaries failed (exit {proc.returncode}):\n" + "\n".join(lines[-30:]))
    return bins


def missing_prerequisites() -> list[str]:
    return [pkg for pkg, path in PREREQUISITES.items() if not Path(path).exists()]


def install_prerequisites(progress: Progress = print_progress) -> None:
    """apt-get install the missing Debian packages (waits for another apt/dpkg up to 5 minutes)."""
    missing = missing_prerequisites()
    if not missing:
        return
    if os.geteuid() != 0:
        raise StackError(f"the cluster needs root, and the Debian packages {' '.join(missing)}")
    progress(f"installing {' '.join(missing)} with apt-get")
    lock = ["-o", "DPkg::Lock::Timeout=300"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", *lock, "update", "-qq"], ["apt-get", *lock, "install", "-y", "-qq", *missing]):
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise StackError(f"{' '.join(argv)} failed: {proc.stderr.strip()[-2000:]}")
    still = missing_prerequisites()
    if still:
        raise StackError(f"apt-get did not install {' '.join(still)}")


def image_archives(cache: Path, coredns: Path) -> list[Path]:
    """The node's local images as archives in <cache>/images, written again when a file in one is newer."""
    out = []
    for image in local_images(BUSYBOX, coredns, COREDNS_VERSION):
        name = image.ref.removeprefix("localhost/").replace("/", "_").replace(":", "_") + ".tar"
        path = cache / "images" / name
        if not path.exists() or path.stat().st_mtime < max(p.stat().st_mtime for p in image.files.values()):
            write_archive(image, path)
        out.append(path)
    return out
