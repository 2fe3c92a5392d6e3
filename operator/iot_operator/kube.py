"""The Kubernetes API edge of the operator: server-side apply, list, delete, discovery (kubernetes client, raw calls).

Server-side apply with one field manager makes every write idempotent: applying an unchanged manifest changes nothing
(no new resourceVersion), so a reconcile that runs twice, or after a restart, creates no duplicates.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any

import urllib3

from iot_operator import FIELD_MANAGER
from iotcommon.errors import IoTError, ServiceUnavailable

#: (apiVersion, kind) of every kind of child the operator creates (listed by label for drift and pruning)
CHILD_KINDS: tuple[tuple[str, str], ...] = (
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Secret"),
    ("v1", "Service"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("networking.k8s.io/v1", "Ingress"),
    ("flink.apache.org/v1beta1", "FlinkDeployment"),
)
#: workloads, in the order a deletion stops them: producers first, then the job, then the consumers
WORKLOAD_KINDS: tuple[tuple[str, str], ...] = (
    ("apps/v1", "StatefulSet"),
    ("flink.apache.org/v1beta1", "FlinkDeployment"),
    ("apps/v1", "Deployment"),
)

#: (apiVersion, kind) -> plural of every kind the operator reads or writes
PLURALS: dict[tuple[str, str], str] = {
    ("v1", "PersistentVolumeClaim"): "persistentvolumeclaims",
    ("v1", "Secret"): "secrets",
    ("v1", "Service"): "services",
    ("v1", "ConfigMap"): "configmaps",
    ("v1", "Pod"): "pods",
    ("apps/v1", "Deployment"): "deployments",
    ("apps/v1", "StatefulSet"): "statefulsets",
    ("networking.k8s.io/v1", "Ingress"): "ingresses",
    ("flink.apache.org/v1beta1", "FlinkDeployment"): "flinkdeployments",
    ("iotpipe.dev/v1alpha1", "IoTPipeline"): "iotpipelines",
}

def new_api_client() -> Any:
    """An ApiClient: in-cluster config when there is one, else $KUBECONFIG / ~/.kube/config."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    api = client.ApiClient()
    if not api.configuration.verify_ssl:  # an explicit insecure-skip-tls-verify: said once, not per call
        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return api


def collection_path(api_version: str, plural: str, namespace: str | None) -> str:
    """A namespace's collection, or every namespace's with ``namespace=None``."""
    base = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{base}/namespaces/{namespace}/{plural}" if namespace else f"{base}/{plural}"


def object_path(obj: dict[str, Any]) -> str:
    plural = PLURALS[(obj["apiVersion"], obj["kind"])]
    return f"{collection_path(obj['apiVersion'], plural, obj['metadata']['namespace'])}/{obj['metadata']['name']}"


class ApiRefused(IoTError):
    """The API server refused a request (4xx): ``status`` and the message of its Status object."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def _status_message(body: str, reason: str) -> str:
    """The message of the Status object the API server answers an error with, else the HTTP reason."""
    try:
        return str(json.loads(body)["message"])
    except (TypeError, ValueError, KeyError):
        return reason


class Kube:
    """Raw calls to the API server. Raises only iotcommon errors: ServiceUnavailable when it cannot be reached or
    answers 5xx, ApiRefused for any other error answer (get, list and delete turn 404 into None, [] and False)."""

    def __init__(self, client: Any | None = None) -> None:
        self.client = client or new_api_client()

    def _call(self, method: str, path: str, *, body: Any = None, query: Sequence[tuple[str, str]] = (),
              content_type: str | None = None, what: str = "") -> tuple[Any, int]:
        from kubernetes.client.exceptions import ApiException

        what = what or f"{method} {path}"
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            method, url, headers, body, post = self.client.param_serialize(
                method=method, resource_path=path, query_params=list(query), header_params=headers, body=body,
                auth_settings=["BearerToken"])
            resp = self.client.call_api(method, url, header_params=headers, body=body, post_params=post,
                                        _request_timeout=30)
            raw = resp.read()
            status, reason = int(resp.status), str(resp.reason)
        except (OSError, urllib3.exceptions.HTTPError) as exc:
            raise ServiceUnavailable(f"the Kubernetes API is unreachable: {exc}") from exc
        except ApiException as exc:  # the client's own retries gave up, or TLS failed (status 0)
            raw, status, reason = exc.body, int(exc.status or 0), str(exc.reason)
        text = raw.decode() if isinstance(raw, bytes) else str(raw or "")
        if status == 0 or status >= 500:
            raise ServiceUnavailable(f"the Kubernetes API failed {what}: {reason}")
        if status >= 400:
            raise ApiRefused(status, _status_message(text, reason))
        return (json.loads(text) if text else {}), status

    def apply(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        """Server-side apply (force: the operator owns these fields). Returns (live object, created)."""
        data, status = self._call("PATCH", object_path(obj), body=obj, content_type="application/apply-patch+yaml",
                                  query=[("fieldManager", FIELD_MANAGER), ("force", "true")],
                                  what=f"applying {obj['kind']} {obj['metadata']['name']}")
        return data, status == 201

    def get(self, path: str) -> dict[str, Any] | None:
        try:
            data, _ = self._call("GET", path)
        except ApiRefused as exc:
            if exc.status == 404:
                return None
            raise
        return dict(data)

    def list(self, api_version: str, kind: str, namespace: str | None, label_selector: str) -> list[dict[str, Any]]:
        """Objects of a kind in a namespace (None: in all namespaces) matching a label selector ("" = all)."""
        path = collection_path(api_version, PLURALS[(api_version, kind)], namespace)
        query = [("labelSelector", label_selector)] if label_selector else []
        try:
            data, _ = self._call("GET", path, query=query)
        except ApiRefused as exc:
            if exc.status == 404:  # the kind is not served (e.g. no FlinkDeployment CRD)
                return []
            raise
        items = list(data.get("items") or [])
        for item in items:  # list items carry no apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items

    def delete(self, obj: dict[str, Any]) -> bool:
        try:
            self._call("DELETE", object_path(obj), body={"propagationPolicy": "Background"})
        except ApiRefused as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def patch_status(self, path: str, status: dict[str, Any]) -> None:
        """Merge-patch the status subresource (only the keys given; a null removes its key)."""
        self._call("PATCH", f"{path}/status", body={"status": status}, content_type="application/merge-patch+json")

    def post_event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None:
        """A core/v1 Event about ``obj`` (what `kubectl describe` shows)."""
        meta = obj.get("metadata") or {}
        now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        event = {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta.get('name')}.", "namespace": meta.get("namespace")},
            "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
                               "namespace": meta.get("namespace"), "uid": meta.get("uid")},
            "type": event_type, "reason": reason, "message": message[:1024], "count": 1,
            "firstTimestamp": now, "lastTimestamp": now,
            "source": {"component": FIELD_MANAGER}, "reportingComponent": FIELD_MANAGER,
            "reportingInstance": socket.gethostname(),
        }
        self._call("POST", f"/api/v1/namespaces/{meta.get('namespace')}/events", body=event,
                   content_type="application/json")

    def serves(self, api_version: str, plural: str) -> bool:
        """Whether the API server serves a resource (discovery), e.g. FlinkDeployments of the Flink operator."""
        doc = self.get(f"/apis/{api_version}")
        return bool(doc) and any(r.get("name") == plural for r in (doc or {}).get("resources", []))
