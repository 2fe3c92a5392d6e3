"""The Kubernetes edge raises domain errors only (unit test: a FAKE ApiClient answers with fixed HTTP statuses)."""

from __future__ import annotations

import json
from typing import Any

import pytest
import urllib3

from iot_operator.kube import ApiRefused, Kube
from iotcommon.errors import IoTError, ServiceUnavailable

CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "p-grafana-dashboard", "namespace": "ns"}}


class Answer:
    def __init__(self, status: int, reason: str, body: dict[str, Any] | None) -> None:
        self.status, self.reason, self.body = status, reason, json.dumps(body).encode() if body else b""

    def read(self) -> bytes:
        return self.body


class FakeClient:
    """Answers every call with one fixed HTTP answer, or raises ``error``."""

    def __init__(self, answer: Answer | None = None, error: Exception | None = None) -> None:
        self.answer, self.error, self.calls = answer, error, []

    def param_serialize(self, method: str, resource_path: str, **_: Any) -> tuple[Any, ...]:
        self.calls.append((method, resource_path))
        return method, resource_path, {}, None, []

    def call_api(self, *_: Any, **__: Any) -> Answer:
        if self.error is not None:
            raise self.error
        assert self.answer is not None
        return self.answer


def status_body(message: str) -> dict[str, Any]:
    return {"kind": "Status", "status": "Failure", "message": message}


def test_a_refusal_is_an_iot_error_carrying_the_status_and_the_api_servers_message() -> None:
    kube = Kube(FakeClient(Answer(422, "Unprocessable Entity", status_body("spec.replicas: Invalid value: -1"))))
    with pytest.raises(ApiRefused) as refused:
        kube.apply(CM)
    assert isinstance(refused.value, IoTError)
    assert (refused.value.status, refused.value.message) == (422, "spec.replicas: Invalid value: -1")


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_service_unavailable_naming_what_failed(status: int) -> None:
    kube = Kube(FakeClient(Answer(status, "Service Unavailable", status_body("etcd is down"))))
    with pytest.raises(ServiceUnavailable, match="the Kubernetes API failed applying ConfigMap p-grafana-dashboard: "
                                                 "Service Unavailable"):
        kube.apply(CM)


def test_an_unreachable_api_server_is_service_unavailable() -> None:
    kube = Kube(FakeClient(error=urllib3.exceptions.MaxRetryError(None, "/api", "connection refused")))  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailable, match="unreachable"):
        kube.get("/api/v1/namespaces/ns/configmaps/x")


def test_not_found_is_an_answer_for_get_list_and_delete() -> None:
    kube = Kube(FakeClient(Answer(404, "Not Found", status_body("not found"))))
    assert kube.get("/api/v1/namespaces/ns/configmaps/x") is None
    assert kube.list("flink.apache.org/v1beta1", "FlinkDeployment", "ns", "") == []
    assert kube.delete(CM) is False
    with pytest.raises(ApiRefused) as refused:  # but a status write to a missing object is refused
        kube.patch_status("/apis/iotpipe.dev/v1alpha1/namespaces/ns/iotpipelines/p", {"phase": "Running"})
    assert refused.value.status == 404


def test_a_forbidden_list_is_refused_with_403() -> None:
    kube = Kube(FakeClient(Answer(403, "Forbidden", status_body("iotpipelines is forbidden"))))
    with pytest.raises(ApiRefused) as refused:
        kube.list("iotpipe.dev/v1alpha1", "IoTPipeline", None, "")
    assert (refused.value.status, refused.value.message) == (403, "iotpipelines is forbidden")


def test_list_items_get_their_api_version_and_kind() -> None:
    kube = Kube(FakeClient(Answer(200, "OK", {"items": [{"metadata": {"name": "a"}}]})))
    assert kube.list("v1", "Secret", "ns", "x=y") == [{"metadata": {"name": "a"}, "apiVersion": "v1",
                                                        "kind": "Secret"}]
