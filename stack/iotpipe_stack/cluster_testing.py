"""pytest fixture ``kube_cluster``: a real single-node Kubernetes for the test session (registered in conftest.py).

Session-scoped and lazy: the cluster (iotpipe_stack.cluster) starts the first time a test asks for it, in a network
namespace and address slot of its own (so it can run beside a developer's `make cluster`), and it is torn down at the
end of the session; the teardown fails if anything stays behind. Its home is the first free one of
``$IOTPIPE_CACHE/test-clusters/<0..1>`` (a file lock, held for the session; a temporary home when both are in
use): a home keeps containerd's root, so images loaded by one session (seconds to minutes each on a busy machine) are
still there in the next one; everything else starts fresh (Cluster.start). The
binaries are built from the Go module proxy on first use (`make cluster-tools` does it ahead of time). If the cluster
cannot start, the test FAILS with the reason and the last log lines: tests never skip. Needs root.

    kube_cluster.kubeconfig             admin kubeconfig path
    kube_cluster.kubectl(*args, ...)    run the cached kubectl as admin (CompletedProcess; raises unless check=False)
    kube_cluster.containerd_address     the node's containerd socket (images go to namespace k8s.io)
    kube_cluster.env_lines()            KUBECONFIG=..., CONTAINERD_ADDRESS=..., CONTAINERD_NAMESPACE=k8s.io
    kube_cluster.timings                seconds per start-up step
"""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

import pytest

from iotcommon.errors import StackError
from iotpipe_stack.cluster import Cluster
from iotpipe_stack.kube import cache_dir

HOMES = 2


def _progress(msg: str) -> None:
    print(f"[kube-cluster] {msg}", flush=True)


@contextlib.contextmanager
def reusable_home(root: Path, count: int = HOMES) -> Iterator[Path | None]:
    """The first of ``root/0 .. root/<count-1>`` whose lock file this process can take (held until exit), or None."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        with open(root / f"{i}.lock", "a") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            try:
                yield root / str(i)
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
            return
    yield None


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with reusable_home(cache_dir() / "test-clusters") as reused:
        yield from _cluster(reused or tmp_path_factory.mktemp("cluster"))


def _cluster(home: Path) -> Iterator[Cluster]:
    _progress(f"home {home}")
    cluster = Cluster(home, progress=_progress, die_with_parent=True, timeout=600)
    try:
        cluster.start()
    except StackError as exc:
        pytest.fail(f"the local Kubernetes cluster could not start (home {home}):\n{exc}", pytrace=False)
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        except StackError as exc:
            pytest.fail(f"the local Kubernetes cluster did not stop cleanly:\n{exc}", pytrace=False)
