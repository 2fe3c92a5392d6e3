"""What the local cluster runs in itself: its three local images and the CoreDNS add-on (pure; no I/O).

CoreDNS serves ``cluster.local`` from the API (Services, Pods) as a Deployment in kube-system behind the Service
``kube-dns`` at DNS_SERVICE_IP. It runs under Pod Security "restricted" (non-root, no capabilities: it listens on
1053 and the Service maps 53 to it). There is no upstream forwarder: the machines reach no outside DNS.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from iotpipe_stack.cluster_config import CLUSTER_DOMAIN, DNS_SERVICE_IP, PAUSE_IMAGE
from iotpipe_stack.tiny_images import TinyImage

BUSYBOX_IMAGE = "localhost/iotpipe/busybox:1"
COREDNS_PORT = 1053
NOBODY = 65534

#: busybox applets the images link (tests and debugging use these)
BUSYBOX_APPLETS = ("sh", "sleep", "echo", "cat", "ls", "nslookup", "wget", "hostname", "id", "env", "true", "false",
                   "nc", "ps", "date", "grep", "head", "tail", "test", "[", "mkdir", "rm", "touch", "httpd", "sed",
                   "seq", "awk", "timeout")

COREFILE = f""".:{COREDNS_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loadbalance
}}
"""


def coredns_image_ref(version: str) -> str:
    return f"localhost/iotpipe/coredns:{version}"


def local_images(busybox: Path, coredns: Path, coredns_version: str) -> list[TinyImage]:
    """pause (busybox sleeping as the sandbox), busybox (with a few applets) and coredns."""
    applets = {f"bin/{a}": "busybox" for a in BUSYBOX_APPLETS}
    return [
        TinyImage(PAUSE_IMAGE, {"bin/busybox": busybox}, entrypoint=("/bin/busybox", "sleep", "2147483647")),
        TinyImage(BUSYBOX_IMAGE, {"bin/busybox": busybox}, applets, cmd=("/bin/sh",)),
        TinyImage(coredns_image_ref(coredns_version), {"coredns": coredns}, entrypoint=("/coredns",),
                  user=f"{NOBODY}:{NOBODY}"),
    ]


def restricted_container_security() -> dict[str, Any]:
    """A container securityContext that passes Pod Security "restricted"."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "runAsNonRoot": True,
        "runAsUser": NOBODY,
        "runAsGroup": NOBODY,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def coredns_manifests(coredns_version: str) -> list[dict[str, Any]]:
    """ServiceAccount, RBAC, Corefile ConfigMap, Deployment and the kube-dns Service."""
    ns = "kube-system"
    labels = {"k8s-app": "kube-dns"}
    probe_ready = {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2, "failureThreshold": 3}
    probe_live = {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 30, "periodSeconds": 10,
                  "timeoutSeconds": 5, "failureThreshold": 6}
    container = {
        "name": "coredns",
        "image": coredns_image_ref(coredns_version),
        "imagePullPolicy": "Never",
        "args": ["-conf", "/etc/coredns/Corefile"],
        "ports": [{"name": "dns", "containerPort": COREDNS_PORT, "protocol": "UDP"},
                  {"name": "dns-tcp", "containerPort": COREDNS_PORT, "protocol": "TCP"}],
        "readinessProbe": probe_ready,
        "livenessProbe": probe_live,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "170Mi"}},
        "securityContext": restricted_container_security(),
        "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
    }
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "coredns", "namespace": ns}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": "system:coredns"},
         "rules": [{"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
                    "verbs": ["list", "watch"]},
                   {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": "system:coredns"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:coredns"},
         "subjects": [{"kind": "ServiceAccount", "name": "coredns", "namespace": ns}]},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns", "namespace": ns},
         "data": {"Corefile": COREFILE}},
        {"apiVersion": "apps/v1", "kind": "Deployment",
         "metadata": {"name": "coredns", "namespace": ns, "labels": labels},
         "spec": {"replicas": 1, "selector": {"matchLabels": labels},
                  "template": {"metadata": {"labels": labels},
                               "spec": {"serviceAccountName": "coredns", "dnsPolicy": "Default",
                                        "priorityClassName": "system-cluster-critical",
                                        "securityContext": {"runAsNonRoot": True,
                                                            "seccompProfile": {"type": "RuntimeDefault"}},
                                        "containers": [container],
                                        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}]}}}},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": ns, "labels": labels},
         "spec": {"selector": labels, "clusterIP": DNS_SERVICE_IP,
                  "ports": [{"name": "dns", "port": 53, "targetPort": COREDNS_PORT, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "targetPort": COREDNS_PORT, "protocol": "TCP"}]}},
    ]
