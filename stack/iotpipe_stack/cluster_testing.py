"""pytest fixture ``kube_cluster``: a real single-node Kubernetes for the test session (registered in conftest.py).

Session-scoped and lazy: the cluster (iotpipe_stack.cluster) starts the first time a test asks for it, under a
temporary home, in a network namespace and address slot of its own (so it can run beside a developer's
`make cluster`), and it is torn down at the end of the session; the teardown fails if anything stays behind. The
binaries are built from the Go module proxy on first use (`make cluster-tools` does it ahead of time). If the cluster
cannot start, the test FAILS with the reason and the last log lines: tests never skip. Needs root.

    kube_cluster.kubeconfig             admin kubeconfig path
    kube_cluster.kubectl(*args, ...)    run the cached kubectl as admin (CompletedProcess; raises unless check=False)
    kube_cluster.containerd_address     the node's containerd socket (images go to namespace k8s.io)
    kube_cluster.env_lines()            KUBECONFIG=..., CONTAINERD_ADDRESS=..., CONTAINERD_NAMESPACE=k8s.io
    kube_cluster.timings                seconds per start-up step
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iotcommon.errors import StackError
from iotpipe_stack.cluster import Cluster


def _progress(msg: str) -> None:
    print(f"[kube-cluster] {msg}", flush=True)


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    home = tmp_path_factory.mktemp("cluster")
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
