"""Fixtures of the live operator tests; also makes op_live_kit (beside this file) importable (importlib mode)."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from iotpipe_stack.kube_testing import OPERATOR_USER

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
from op_live_kit import CRD, RULES, Operator, established  # noqa: E402


@pytest.fixture(scope="module")
def api(kube_apiserver: Any) -> Any:
    """The API server with the IoTPipeline CRD installed and established."""
    kube_apiserver.kubectl("apply", "--server-side", "--field-manager=iotpipe-tests", "-f", str(CRD))
    established(kube_apiserver, "iotpipelines.iotpipe.dev")
    return kube_apiserver



@pytest.fixture
def namespace(api: Any) -> str:
    """A fresh namespace where the operator user has exactly the chart's Role."""
    ns = f"op-{uuid.uuid4().hex[:8]}"
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "iotpipe-operator", "namespace": ns}, "rules": yaml.safe_load(RULES.read_text())}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "iotpipe-operator", "namespace": ns},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "iotpipe-operator"},
               "subjects": [{"kind": "User", "name": OPERATOR_USER, "apiGroup": "rbac.authorization.k8s.io"}]}
    api.kubectl("create", "namespace", ns)
    api.kubectl("apply", "-f", "-", input_text=json.dumps({"apiVersion": "v1", "kind": "List",
                                                          "items": [role, binding]}))
    return ns


@pytest.fixture
def operator(api: Any, namespace: str, tmp_path: Path) -> Iterator[Operator]:
    op = Operator(api, namespace, tmp_path / "operator.log").start()
    try:
        yield op
    finally:
        op.stop()

