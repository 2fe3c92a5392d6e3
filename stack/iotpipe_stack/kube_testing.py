"""pytest fixture ``kube_apiserver``: a real kube-apiserver + etcd for the test session (registered in conftest.py).

Session-scoped and lazy; free loopback ports; state under a temporary directory; token authentication with RBAC. The
binaries are built from the Go module proxy on first use (``make kube-tools`` does it ahead of time). If the server
cannot start, the test FAILS with the reason and the last log lines: tests never skip.

    kube_apiserver.kubeconfig              admin (system:masters) kubeconfig path
    kube_apiserver.kubeconfig_for(user)    kubeconfig of a restricted token user (see OPERATOR_USER)
    kube_apiserver.kubectl(*args)          run the cached kubectl as admin (CompletedProcess; raises on failure)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from iotcommon.errors import StackError
from iotpipe_stack.kube import KubeAPIServer, ensure_binaries

#: a token user with no permissions of its own: tests bind roles to it (e.g. the operator's least-privilege Role)
OPERATOR_USER = "iotpipe-operator"
OPERATOR_GROUP = "iotpipe:operators"


@pytest.fixture(scope="session")
def kube_apiserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KubeAPIServer]:
    home = tmp_path_factory.mktemp("kube")
    try:
        api = KubeAPIServer(home, ensure_binaries(), users={OPERATOR_USER: (OPERATOR_GROUP,)}, die_with_parent=True)
        api.start()
    except StackError as exc:
        pytest.fail(f"kube-apiserver + etcd could not start (home {home}):\n{exc}", pytrace=False)
    try:
        yield api
    finally:
        api.stop()
