"""iotpipe_stack.kube without starting anything: binary names, kubeconfig, clear failures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iotcommon.errors import StackError
from iotpipe_stack import kube
from iotpipe_stack.kube import KubeAPIServer, KubeBinaries, ensure_binaries, kubeconfig_text


def test_binaries_are_cached_per_version(tmp_path: Path) -> None:
    bins = KubeBinaries.in_cache(tmp_path)
    assert bins.apiserver == tmp_path / "bin" / f"kube-apiserver-v{kube.K8S_VERSION}"
    assert bins.kubectl == tmp_path / "bin" / f"kubectl-v{kube.K8S_VERSION}"
    assert bins.etcd == tmp_path / "bin" / f"etcd-v{kube.ETCD_VERSION}"
    assert bins.missing() == [bins.apiserver, bins.kubectl, bins.etcd]


def test_kubeconfig_uses_the_token_and_the_server() -> None:
    doc = json.loads(kubeconfig_text("https://127.0.0.1:6443", "alice", "s3cret"))
    assert doc["clusters"][0]["cluster"] == {"server": "https://127.0.0.1:6443", "insecure-skip-tls-verify": True}
    assert doc["users"] == [{"name": "alice", "user": {"token": "s3cret"}}]
    assert doc["current-context"] == "alice@iotpipe-test"


def test_missing_binaries_fail_with_the_remedy(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="make kube-tools"):
        ensure_binaries(tmp_path, build=False)
    api = KubeAPIServer(tmp_path / "home", KubeBinaries.in_cache(tmp_path))
    with pytest.raises(StackError, match="make kube-tools"):
        api.start()


def test_build_script_is_what_the_makefile_runs() -> None:
    makefile = (kube.REPO_ROOT / "Makefile").read_text()
    assert "kube-tools:" in makefile and "stack/kube/build.sh" in makefile
    assert kube.BUILD_SCRIPT.is_file()
