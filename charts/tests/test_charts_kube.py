"""Every rendered manifest passes a server-side dry-run apply against the real kube-apiserver, in namespaces labelled
to enforce Pod Security "restricted" (the chart's CRDs installed first), and the charts really install and uninstall.

Pod Security admission enforces on Pods only; for Deployments and StatefulSets it only *warns*. So the test checks
both: applying the rendered manifests must succeed with no PodSecurity warning, and the pod template of every workload,
applied as a Pod in the same namespace, must be admitted under "enforce: restricted". A privileged Pod in the same
namespace is rejected, which shows the enforcement is on.

Exceptions (none today): a case that cannot meet "restricted" is listed in RESTRICTED_EXCEPTIONS with the reason.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.kube, pytest.mark.helm]

REPO_ROOT = Path(__file__).resolve().parents[2]
VALUES_DIR = REPO_ROOT / "charts" / "tests" / "values"
CRDS = REPO_ROOT / "charts" / "iotpipe-operator" / "crds"
CASES = [("iotpipe-operator", None), ("iotpipe-platform", None)] + [
    (p.name.split(".")[0], p) for p in sorted(VALUES_DIR.glob("*.yaml"))
]
#: namespaces the non-default operator values name in watchNamespaces (the chart puts a Role in each)
EXTRA_NAMESPACES = ("iot-team-a", "iot-team-b")
RESTRICTED = {
    "pod-security.kubernetes.io/enforce": "restricted",
    "pod-security.kubernetes.io/enforce-version": "latest",
    "pod-security.kubernetes.io/warn": "restricted",
    "pod-security.kubernetes.io/warn-version": "latest",
    "pod-security.kubernetes.io/audit": "restricted",
}
#: (chart, workload name suffix) -> why it cannot run under "restricted". Empty: every workload complies.
RESTRICTED_EXCEPTIONS: dict[tuple[str, str], str] = {}
WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def case_id(case: tuple[str, Path | None]) -> str:
    chart, values = case
    return values.stem if values else f"{chart}.defaults"


def kubectl(api: Any, *args: str, input_text: str | None = None) -> Any:
    return api.kubectl(*args, input_text=input_text, check=False, timeout=120)


def namespace_doc(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": RESTRICTED}}


@pytest.fixture(scope="module")
def cluster(kube_apiserver: Any) -> Any:
    """The apiserver with the chart's CRDs installed (for real) and the extra watched namespaces created."""
    res = kubectl(kube_apiserver, "apply", "--server-side", "--force-conflicts", "--field-manager=iotpipe-charts-test",
                  "-f", str(CRDS))  # fmt: skip
    assert res.returncode == 0, res.stderr
    for crd in sorted(CRDS.glob("*.yaml")):
        for doc in yaml.safe_load_all(crd.read_text(encoding="utf-8")):
            if doc:
                res = kubectl(kube_apiserver, "wait", "--for=condition=Established", "--timeout=60s",
                              f"crd/{doc['metadata']['name']}")  # fmt: skip
                assert res.returncode == 0, res.stderr
    for ns in EXTRA_NAMESPACES:
        res = kubectl(kube_apiserver, "apply", "-f", "-", input_text=json.dumps(namespace_doc(ns)))
        assert res.returncode == 0, res.stderr
    return kube_apiserver


@pytest.fixture
def restricted_ns(cluster: Any) -> str:
    name = f"charts-{uuid.uuid4().hex[:8]}"
    res = kubectl(cluster, "create", "-f", "-", input_text=json.dumps(namespace_doc(name)))
    assert res.returncode == 0, res.stderr
    return name


def pod_from(workload: dict[str, Any]) -> dict[str, Any]:
    """The Pod the workload's controller would create (a StatefulSet adds one PVC volume per claim template)."""
    template = workload["spec"]["template"]
    meta = workload["metadata"]
    name = f"{meta['name']}-0"[:63]
    spec = dict(template["spec"])
    claims = workload["spec"].get("volumeClaimTemplates", [])
    if claims:
        spec["volumes"] = [*spec.get("volumes", []), *(
            {"name": c["metadata"]["name"], "persistentVolumeClaim": {"claimName": f"{c['metadata']['name']}-{name}"}}
            for c in claims
        )]  # fmt: skip
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": meta["namespace"], "labels": template["metadata"].get("labels", {})},
        "spec": spec,
    }


def dry_run_apply(api: Any, docs: list[dict[str, Any]]) -> Any:
    stream = "\n---\n".join(yaml.safe_dump(d) for d in docs)
    return kubectl(api, "apply", "--server-side", "--dry-run=server", "--field-manager=helm", "-f", "-",
                   input_text=stream)  # fmt: skip


def test_pod_security_restricted_is_enforced(cluster: Any, restricted_ns: str) -> None:
    privileged = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": restricted_ns},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.37", "securityContext": {"privileged": True}}]},
    }
    res = dry_run_apply(cluster, [privileged])
    assert res.returncode != 0
    assert 'violates PodSecurity "restricted:latest"' in res.stderr
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "privileged", "namespace": restricted_ns},
        "spec": {
            "selector": {"matchLabels": {"app": "p"}},
            "template": {"metadata": {"labels": {"app": "p"}}, "spec": privileged["spec"]},
        },
    }
    res = dry_run_apply(cluster, [deployment])
    assert res.returncode == 0, "workloads are only warned about"
    assert 'would violate PodSecurity "restricted:latest"' in res.stderr


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_rendered_manifests_pass_server_side_dry_run_under_restricted(
    helm: Any, cluster: Any, restricted_ns: str, case: tuple[str, Path | None]
) -> None:
    chart, values = case
    docs = helm.render(chart, values=[values] if values else [], release="rel", namespace=restricted_ns)
    assert docs
    res = dry_run_apply(cluster, docs)
    assert res.returncode == 0, res.stderr
    assert "PodSecurity" not in res.stderr, res.stderr
    applied = [line for line in res.stdout.splitlines() if "serverside-applied (server dry run)" in line]
    assert len(applied) == len(docs), res.stdout

    workloads = [d for d in docs if d["kind"] in WORKLOADS]
    for w in workloads:
        exception = next((why for (c, suffix), why in RESTRICTED_EXCEPTIONS.items()
                          if c == chart and w["metadata"]["name"].endswith(suffix)), None)  # fmt: skip
        res = dry_run_apply(cluster, [pod_from(w)])
        if exception:
            assert res.returncode != 0, f"{w['metadata']['name']} is listed as an exception ({exception}) but passes"
        else:
            assert res.returncode == 0, f"{w['kind']} {w['metadata']['name']}: {res.stderr}"


@pytest.mark.parametrize("chart", ["iotpipe-operator", "iotpipe-platform"])
def test_helm_install_upgrade_uninstall_for_real(
    helm: Any, cluster: Any, restricted_ns: str, chart: str, tmp_path: Path
) -> None:
    """A real `helm install` (no --wait: there is no kubelet), an upgrade with other values, then uninstall."""
    kube = ["--kubeconfig", str(cluster.kubeconfig), "--namespace", restricted_ns]
    path = str(REPO_ROOT / "charts" / chart)
    res = helm.run(["install", "rel", path, *kube])
    assert res.returncode == 0, res.output
    assert "STATUS: deployed" in res.stdout
    notes = res.stdout.split("NOTES:", 1)[1]
    if chart == "iotpipe-operator":
        assert f"It watches IoTPipeline objects in: {restricted_ns}." in notes
    else:
        assert f"Kafka bootstrap:   rel-kafka.{restricted_ns}.svc:9092" in notes

    listed = kubectl(cluster, "get", "deployments,statefulsets,services,configmaps", "-n", restricted_ns,
                     "-l", "app.kubernetes.io/instance=rel", "-o", "name")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    expected = {f"{d['kind'].lower()}.apps/{d['metadata']['name']}" if d["kind"] in WORKLOADS
                else f"{d['kind'].lower()}/{d['metadata']['name']}"
                for d in helm.render(chart, release="rel", namespace=restricted_ns)
                if d["kind"] in WORKLOADS | {"Service", "ConfigMap"}}  # fmt: skip
    assert set(listed.stdout.split()) == expected

    upgrade_values = {"iotpipe-operator": {"logLevel": "DEBUG", "extraArgs": ["--verbose"]},
                      "iotpipe-platform": {"kafka": {"config": {"log.retention.hours": 24}},
                                           "grafana": {"env": {"GF_USERS_DEFAULT_THEME": "light"}}}}  # fmt: skip
    values_file = tmp_path / "upgrade.yaml"
    values_file.write_text(yaml.safe_dump(upgrade_values[chart]), encoding="utf-8")
    res = helm.run(["upgrade", "rel", path, *kube, "--values", str(values_file)])
    assert res.returncode == 0, res.output
    res = helm.run(["uninstall", "rel", *kube])
    assert res.returncode == 0, res.output
    listed = kubectl(cluster, "get", "deployments,statefulsets,services", "-n", restricted_ns,
                     "-l", "app.kubernetes.io/instance=rel", "-o", "name")  # fmt: skip
    assert listed.stdout.split() == []


def test_upgrade_keeps_the_generated_grafana_password(helm: Any, cluster: Any, restricted_ns: str) -> None:
    kube = ["--kubeconfig", str(cluster.kubeconfig), "--namespace", restricted_ns]
    path = str(REPO_ROOT / "charts" / "iotpipe-platform")
    only_grafana = ["--set", "kafka.enabled=false", "--set", "hbase.enabled=false"]

    def password() -> str:
        res = kubectl(cluster, "get", "secret", "g-grafana-admin", "-n", restricted_ns,
                      "-o", "jsonpath={.data.admin-password}")  # fmt: skip
        assert res.returncode == 0, res.stderr
        return str(res.stdout)

    assert helm.run(["install", "g", path, *kube, *only_grafana]).returncode == 0
    first = password()
    assert len(first) > 20
    res = helm.run(["upgrade", "g", path, *kube, *only_grafana, "--set", "grafana.port=3001"])
    assert res.returncode == 0, res.output
    assert password() == first
    assert helm.run(["uninstall", "g", *kube]).returncode == 0


def test_readme_flow_install_charts_apply_the_sample_and_scale(
    helm: Any, cluster: Any, restricted_ns: str, tmp_path: Path
) -> None:
    """README "Deploy on Kubernetes", as far as an API server without kubelets goes: both charts install, the sample
    IoTPipeline is accepted by the chart's CRD, and `kubectl scale` drives its simulators through the scale subresource.
    """
    kube = ["--kubeconfig", str(cluster.kubeconfig), "--namespace", restricted_ns]
    for release, chart in (("platform", "iotpipe-platform"), ("iotpipe-operator", "iotpipe-operator")):
        res = helm.run(["install", release, str(REPO_ROOT / "charts" / chart), *kube])
        assert res.returncode == 0, res.output
    try:
        res = kubectl(cluster, "apply", "-n", restricted_ns, "-f", str(REPO_ROOT / "examples" / "pipeline.yaml"))
        assert res.returncode == 0, res.stderr
        name = yaml.safe_load((REPO_ROOT / "examples" / "pipeline.yaml").read_text(encoding="utf-8"))["metadata"][
            "name"
        ]
        res = kubectl(cluster, "scale", f"iotpipeline/{name}", "-n", restricted_ns, "--replicas=4")
        assert res.returncode == 0, res.stderr
        res = kubectl(cluster, "get", f"iotpipeline/{name}", "-n", restricted_ns, "-o",
                      "jsonpath={.spec.simulators.replicas}")  # fmt: skip
        assert res.stdout == "4"
    finally:
        kubectl(cluster, "delete", "iotpipelines", "--all", "-n", restricted_ns, "--wait=false")
        for release in ("iotpipe-operator", "platform"):
            helm.run(["uninstall", release, *kube])
