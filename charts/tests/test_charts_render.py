"""helm lint and helm template of every chart, with the default values and with each non-default values file.

The expected values below are written out by hand from the values files, not derived from the templates.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.helm

REPO_ROOT = Path(__file__).resolve().parents[2]
CHARTS = ("iotpipe-operator", "iotpipe-platform")
Helm = Any  # the `helm` fixture's type (charts/tests/conftest.py); test modules cannot import conftest
VALUES_DIR = REPO_ROOT / "charts" / "tests" / "values"
NON_DEFAULT = sorted(VALUES_DIR.glob("*.yaml"))


def chart_of(values_file: Path) -> str:
    """charts/tests/values/<chart>.<case>.yaml -> <chart>."""
    return values_file.name.split(".")[0]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_every_values_file_names_an_existing_chart() -> None:
    assert NON_DEFAULT, "no non-default values files"
    for f in NON_DEFAULT:
        assert chart_of(f) in CHARTS, f
    assert {chart_of(f) for f in NON_DEFAULT} == set(CHARTS), "each chart has non-default values cases"


def test_helm_is_the_project_build(helm: Helm) -> None:
    """stack/kube/build-helm.sh stamps the release version and the Kubernetes version offline rendering assumes."""
    res = helm.run(["version", "--template", "{{ .Version }}"])
    assert res.returncode == 0 and res.stdout == "v3.22.0", res.output
    # the platform chart needs Kubernetes >= 1.28: it renders with the built-in default (1.36), not with 1.27
    platform = str(REPO_ROOT / "charts" / "iotpipe-platform")
    assert helm.run(["template", "t", platform]).returncode == 0
    old = helm.run(["template", "t", platform, "--kube-version", "1.27.0"])
    assert old.returncode != 0 and "kubeVersion" in old.stderr, old.output


@pytest.mark.parametrize("chart", CHARTS)
def test_helm_lint_strict_with_defaults(helm: Helm, chart: str) -> None:
    res = helm.run(["lint", "--strict", str(REPO_ROOT / "charts" / chart)])
    assert res.returncode == 0, res.output
    assert "1 chart(s) linted, 0 chart(s) failed" in res.output


@pytest.mark.parametrize("values_file", NON_DEFAULT, ids=lambda p: p.stem)
def test_helm_lint_strict_with_non_default_values(helm: Helm, values_file: Path) -> None:
    chart = REPO_ROOT / "charts" / chart_of(values_file)
    res = helm.run(["lint", "--strict", str(chart), "--values", str(values_file)])
    assert res.returncode == 0, res.output


@pytest.mark.parametrize("chart", CHARTS)
def test_default_render_labels_every_object_and_uses_release_namespace(helm: Helm, chart: str) -> None:
    docs = helm.render(chart, release="demo", namespace="iot-ns")
    assert docs
    for d in docs:
        labels = d["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "demo", d["metadata"]["name"]
        assert labels["app.kubernetes.io/part-of"] == "iotpipe"
        assert labels["app.kubernetes.io/managed-by"] == "Helm"
        assert d["metadata"]["namespace"] == "iot-ns" or d["kind"] in {"ClusterRole", "ClusterRoleBinding"}


CHECKSUM_LINE = re.compile(r"^\s+(checksum/[\w.-]+):\s*(.*)$", re.MULTILINE)


@pytest.mark.parametrize("values_file", [None, *NON_DEFAULT], ids=lambda p: p.stem if p else "defaults")
def test_config_checksums_are_strings_whatever_their_digits(helm: Helm, values_file: Path | None) -> None:
    """A pod template's checksum annotation is the first 16 hex digits of a digest. Unquoted, a digest of digits only
    (e.g. 7647405409899282, once in CI for a random namespace) is a YAML integer, and the API server rejects the
    object ("expected string"). So every checksum is rendered as a quoted string, and every annotation parses as one."""
    charts = [chart_of(values_file)] if values_file else list(CHARTS)
    checksums = []
    for chart in charts:
        res = helm.template(chart, values=[values_file] if values_file else [])
        assert res.returncode == 0, res.output
        found = CHECKSUM_LINE.findall(res.stdout)
        checksums += found
        for key, value in found:
            assert re.fullmatch(r'"[0-9a-f]{16}"', value), f"{chart}: {key}: {value} is not a quoted digest"
        for d in (d for d in yaml.safe_load_all(res.stdout) if d):
            template = d.get("spec", {}).get("template", {}).get("metadata", {})
            for meta in (d["metadata"], template):
                for key, value in (meta.get("annotations") or {}).items():
                    assert isinstance(value, str), f"{chart} {d['kind']}/{d['metadata']['name']}: {key}={value!r}"
    if values_file is None:  # the platform's defaults: Kafka, HBase and Grafana each roll on a config change
        assert len(checksums) == 3, checksums


# ---------------------------------------------------------------------------------------------------- operator chart


def operator_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    dep = one(docs, "Deployment")
    containers = dep["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["operator"]
    return containers[0]


def test_operator_defaults(helm: Helm) -> None:
    docs = helm.render("iotpipe-operator", release="demo", namespace="iot")
    dep = one(docs, "Deployment", "demo-iotpipe-operator")
    assert dep["spec"]["replicas"] == 1
    assert dep["spec"]["strategy"] == {"type": "Recreate"}
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == "demo-iotpipe-operator"
    one(docs, "ServiceAccount", "demo-iotpipe-operator")
    (role,) = by_kind(docs, "Role")
    assert role["metadata"]["namespace"] == "iot"
    assert one(docs, "RoleBinding")["subjects"] == [
        {"kind": "ServiceAccount", "name": "demo-iotpipe-operator", "namespace": "iot"}
    ]
    c = operator_container(docs)
    assert c["image"] == "iotpipe/operator:0.1.0"
    assert c["args"] == ["--standalone", "--liveness=http://0.0.0.0:8080/healthz", "--namespace=iot"]
    env = env_of(c)
    assert env["IOTPIPE_LOG_LEVEL"] == "INFO"
    assert env["IOTPIPE_METRICS_PORT"] == "8000"
    assert env["IOTPIPE_IMAGE_STREAM_JOB"] == "iotpipe/stream-job:0.1.0"
    assert env["IOTPIPE_IMAGE_HBASE_SYNC"] == "iotpipe/hbase-sync:0.1.0"
    assert env["IOTPIPE_IMAGE_WS_BRIDGE"] == "iotpipe/ws-bridge:0.1.0"
    assert env["IOTPIPE_IMAGE_SIMULATOR"] == "iotpipe/simulator:0.1.0"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    svc = one(docs, "Service", "demo-iotpipe-operator-metrics")
    assert svc["spec"]["ports"] == [{"name": "metrics", "port": 8000, "targetPort": "metrics", "protocol": "TCP"}]
    assert svc["metadata"]["annotations"]["prometheus.io/scrape"] == "true"
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]


def test_operator_named_namespaces(helm: Helm) -> None:
    docs = helm.render("iotpipe-operator", values=[VALUES_DIR / "iotpipe-operator.namespaces.yaml"], namespace="iot")
    c = operator_container(docs)
    assert c["image"] == (
        "registry.example.com/iotpipe/operator@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert c["imagePullPolicy"] == "Always"
    assert c["args"] == [
        "--standalone",
        "--liveness=http://0.0.0.0:8080/healthz",
        "--namespace=iot-team-a",
        "--namespace=iot-team-b",
        "--verbose",
    ]
    env = env_of(c)
    assert env["IOTPIPE_LOG_LEVEL"] == "DEBUG"
    assert env["IOTPIPE_RECONCILE_INTERVAL"] == "30"
    assert env["IOTPIPE_IMAGE_STREAM_JOB"] == "registry.example.com/iotpipe/stream-job:1.2.3"
    assert env["IOTPIPE_IMAGE_SIMULATOR"] == (
        "registry.example.com/iotpipe/simulator:1.2.3"
        "@sha256:89abcdef0123456789abcdef0123456789abcdef0123456789abcdef01234567"
    )
    assert c["resources"] == {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}
    pod = one(docs, "Deployment")["spec"]["template"]
    assert pod["metadata"]["annotations"] == {"example.com/team": "iot"}
    assert pod["metadata"]["labels"]["example.com/tier"] == "control"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]
    svc = one(docs, "Service")
    assert svc["metadata"]["annotations"]["example.com/scrape-group"] == "operators"
    # least-privilege RBAC only where the operator watches
    assert sorted(r["metadata"]["namespace"] for r in by_kind(docs, "Role")) == ["iot-team-a", "iot-team-b"]
    for binding in by_kind(docs, "RoleBinding"):
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "t-iotpipe-operator", "namespace": "iot"}]
    assert by_kind(docs, "ClusterRole") == []


def test_operator_cluster_wide(helm: Helm) -> None:
    docs = helm.render("iotpipe-operator", values=[VALUES_DIR / "iotpipe-operator.cluster-wide.yaml"])
    assert by_kind(docs, "ServiceAccount") == []
    assert by_kind(docs, "Service") == [], "metrics disabled: no metrics Service"
    dep = one(docs, "Deployment", "iot-op")
    assert dep["spec"]["replicas"] == 0
    spec = dep["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "iot-op-sa"
    assert spec["priorityClassName"] == "system-cluster-critical"
    assert spec["nodeSelector"] == {"kubernetes.io/os": "linux"}
    c = operator_container(docs)
    assert c["args"] == ["--standalone", "--liveness=http://0.0.0.0:9000/healthz", "--all-namespaces"]
    assert env_of(c)["IOTPIPE_METRICS_ENABLED"] == "false"
    assert [p["name"] for p in c["ports"]] == ["health"]
    assert by_kind(docs, "Role") == []
    cluster_binding = one(docs, "ClusterRoleBinding")
    assert cluster_binding["roleRef"]["name"] == one(docs, "ClusterRole")["metadata"]["name"]
    assert cluster_binding["subjects"][0]["name"] == "iot-op-sa"
    assert c["livenessProbe"]["periodSeconds"] == 5
    assert c["livenessProbe"]["failureThreshold"] == 6


# ---------------------------------------------------------------------------------------------------- platform chart


def test_platform_defaults(helm: Helm) -> None:
    docs = helm.render("iotpipe-platform", release="demo", namespace="iot")
    kafka = one(docs, "StatefulSet", "demo-kafka")
    assert kafka["spec"]["replicas"] == 1
    assert kafka["spec"]["serviceName"] == "demo-kafka-headless"
    pod = kafka["spec"]["template"]["spec"]
    assert pod["enableServiceLinks"] is False
    (c,) = pod["containers"]
    assert c["image"] == "apache/kafka:4.1.1"
    env = env_of(c)
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ("0@demo-kafka-0.demo-kafka-headless.iot.svc:9093")
    assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://$(POD_NAME).demo-kafka-headless.iot.svc:9092"
    assert env["KAFKA_NODE_ID"] == {"fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}}
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "1"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert env["KAFKA_HEAP_OPTS"] == "-Xmx512m -Xms512m"
    assert kafka["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "10Gi"
    one(docs, "Service", "demo-kafka")
    assert one(docs, "Service", "demo-kafka-headless")["spec"]["clusterIP"] == "None"

    hbase = one(docs, "StatefulSet", "demo-hbase")
    containers = {c["name"]: c for c in hbase["spec"]["template"]["spec"]["containers"]}
    assert set(containers) == {"hbase", "thrift"}
    assert containers["hbase"]["image"] == containers["thrift"]["image"] == "iotpipe/hbase:0.1.0"
    assert containers["thrift"]["args"] == ["start", "-p", "9090"]
    thrift_svc = one(docs, "Service", "demo-hbase")
    assert thrift_svc["spec"]["ports"][0]["port"] == 9090
    site = one(docs, "ConfigMap", "demo-hbase-conf")["data"]["hbase-site.xml"]
    assert "<name>hbase.rootdir</name><value>file:///data/hbase</value>" in site
    assert "<name>hbase.regionserver.thrift.port</name><value>9090</value>" in site
    # WAL splitting after a crash through ZooKeeper, as the local stack's (docs/chaos.md)
    assert "<name>hbase.split.wal.zk.coordinated</name><value>true</value>" in site

    grafana = one(docs, "Deployment", "demo-grafana")
    pod = grafana["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert set(containers) == {"grafana", "dashboard-sidecar"}
    g = containers["grafana"]
    assert g["image"] == "grafana/grafana:12.2.0"
    sidecar = containers["dashboard-sidecar"]
    assert env_of(sidecar)["LABEL"] == "grafana_dashboard"
    assert env_of(sidecar)["NAMESPACE"] == "iot"
    assert env_of(sidecar)["FOLDER_ANNOTATION"] == "grafana_folder"
    # only the sidecar gets an API token, through its own projected volume
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == "demo-grafana"
    assert {m["name"] for m in sidecar["volumeMounts"]} == {"sidecar-dashboards", "sidecar-token"}
    assert "sidecar-token" not in {m["name"] for m in g["volumeMounts"]}
    role = one(docs, "Role", "demo-grafana-dashboards")
    assert role["rules"] == [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}]
    binding = one(docs, "RoleBinding", "demo-grafana-dashboards")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "demo-grafana", "namespace": "iot"}]
    assert by_kind(docs, "ClusterRole") == []
    assert env_of(g)["GF_SERVER_ROOT_URL"] == "http://grafana.iotpipe.local/"
    ingress = one(docs, "Ingress", "demo-grafana")
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "grafana.iotpipe.local"
    assert rule["http"]["paths"][0]["backend"]["service"] == {
        "name": "demo-grafana",
        "port": {"name": "http"},
    }
    datasources = one(docs, "ConfigMap", "demo-grafana-datasources")["data"]
    source = REPO_ROOT / "dashboards" / "grafana" / "provisioning" / "datasources" / "iotpipe-bridge.yaml"
    assert datasources == {"iotpipe-bridge.yaml": source.read_text(encoding="utf-8")}
    assert env_of(g)["IOTPIPE_BRIDGE_URL"] == "http://factory-a-bridge.iot.svc:80"
    assert env_of(g)["IOTPIPE_BRIDGE_TOKEN"] == ""
    secret = one(docs, "Secret", "demo-grafana-admin")
    assert set(secret["data"]) == {"admin-user", "admin-password"}


def test_platform_ha(helm: Helm) -> None:
    docs = helm.render("iotpipe-platform", values=[VALUES_DIR / "iotpipe-platform.ha.yaml"], release="p", namespace="n")
    kafka = one(docs, "StatefulSet", "p-kafka")
    assert kafka["spec"]["replicas"] == 3
    assert kafka["spec"]["podManagementPolicy"] == "Parallel"
    env = env_of(kafka["spec"]["template"]["spec"]["containers"][0])
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == ",".join(
        f"{i}@p-kafka-{i}.p-kafka-headless.n.svc:9093" for i in range(3)
    )
    assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "3"
    assert env["KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"] == "2"
    assert env["KAFKA_NUM_PARTITIONS"] == "6"
    assert env["KAFKA_HEAP_OPTS"] == "-Xmx1g -Xms1g"
    # the apache/kafka image maps KAFKA_A_B__C___D back to a.b_c-d
    assert env["KAFKA_LOG_RETENTION_HOURS"] == "72"
    assert env["KAFKA_MIN_INSYNC_REPLICAS"] == "2"
    assert env["KAFKA_LOG_CLEANER_DEDUPE__BUFFER___X"] == "1"
    claim = kafka["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["storageClassName"] == "fast-ssd"
    assert claim["resources"]["requests"]["storage"] == "50Gi"
    assert kafka["metadata"]["labels"]["example.com/env"] == "staging"
    assert kafka["spec"]["template"]["spec"]["imagePullSecrets"] == [{"name": "regcred"}]

    hbase = one(docs, "StatefulSet", "p-hbase")
    containers = {c["name"]: c for c in hbase["spec"]["template"]["spec"]["containers"]}
    assert containers["hbase"]["image"] == "registry.example.com/iotpipe/hbase:2.6.1-iot1"
    assert env_of(containers["hbase"])["JAVA_TOOL_OPTIONS"] == "-Xmx2g"
    assert env_of(containers["thrift"])["JAVA_TOOL_OPTIONS"] == "-Xmx512m"
    assert containers["thrift"]["args"] == ["start", "-p", "9191"]
    thrift_svc = one(docs, "Service", "p-hbase")
    assert thrift_svc["spec"]["type"] == "NodePort"
    assert thrift_svc["spec"]["ports"][0]["port"] == 9191
    site = one(docs, "ConfigMap", "p-hbase-conf")["data"]["hbase-site.xml"]
    assert "<name>hbase.rootdir</name><value>file:///data/hbase-root</value>" in site  # user value wins
    assert "<name>hbase.regionserver.handler.count</name><value>30</value>" in site

    assert by_kind(docs, "Secret") == [], "an existing admin Secret is used, none is generated"
    grafana = one(docs, "Deployment", "p-grafana")
    g = next(c for c in grafana["spec"]["template"]["spec"]["containers"] if c["name"] == "grafana")
    env = env_of(g)
    assert env["IOTPIPE_BRIDGE_TOKEN"] == {"secretKeyRef": {"name": "factory-a-bridge-token", "key": "token"}}
    assert env["IOTPIPE_BRIDGE_URL"] == "http://factory-a-bridge.iot-team-a.svc:8081"
    sidecar = next(c for c in grafana["spec"]["template"]["spec"]["containers"] if c["name"] == "dashboard-sidecar")
    assert env_of(sidecar)["NAMESPACE"] == "ALL"
    assert by_kind(docs, "Role") == []
    cluster_role = one(docs, "ClusterRole", "n-p-grafana")
    assert cluster_role["rules"][0]["verbs"] == ["get", "list", "watch"]
    one(docs, "ClusterRoleBinding", "n-p-grafana")
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == {
        "secretKeyRef": {"name": "grafana-admin-creds", "key": "admin-password"}
    }
    assert env["GF_SERVER_ROOT_URL"] == "https://grafana.iot.example.com/grafana/"
    assert env["GF_SERVER_SERVE_FROM_SUB_PATH"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    volumes = {v["name"]: v for v in grafana["spec"]["template"]["spec"]["volumes"]}
    assert volumes["storage"]["persistentVolumeClaim"]["claimName"] == "p-grafana"
    one(docs, "PersistentVolumeClaim", "p-grafana")
    ingress = one(docs, "Ingress")
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [{"secretName": "grafana-tls", "hosts": ["grafana.iot.example.com"]}]
    assert ingress["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/grafana"
    assert ingress["metadata"]["annotations"] == {"cert-manager.io/cluster-issuer": "letsencrypt"}
    prometheus = yaml.safe_load(one(docs, "ConfigMap", "p-grafana-datasources")["data"]["prometheus.yaml"])
    assert prometheus["datasources"] == [{"name": "Prometheus", "uid": "prometheus", "type": "prometheus",
                                          "access": "proxy", "url": "http://prometheus-operated.monitoring.svc:9090",
                                          "editable": False}]  # fmt: skip


def test_platform_kafka_only(helm: Helm) -> None:
    docs = helm.render("iotpipe-platform", values=[VALUES_DIR / "iotpipe-platform.kafka-only.yaml"])
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs} == {"kafka"}
    kafka = one(docs, "StatefulSet")
    assert "volumeClaimTemplates" not in kafka["spec"]
    assert {"name": "data", "emptyDir": {}} in kafka["spec"]["template"]["spec"]["volumes"]
    assert env_of(kafka["spec"]["template"]["spec"]["containers"][0])["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"


def test_kafka_storage_is_formatted_with_transactions_version_1_unless_told_otherwise(helm: Helm) -> None:
    """The Flink Kafka sink needs transactions version 1 (values.yaml: kafka.transactionVersion): an init container
    formats each node's storage with it, on the node's data volume, before the image's own start-up."""
    pod = one(helm.render("iotpipe-platform", release="p"), "StatefulSet", "p-kafka")["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    script = init["args"][0]
    assert "kafka.tools.StorageTool format --ignore-formatted" in script
    assert script.endswith("--feature transaction.version=1")
    assert init["image"] == pod["containers"][0]["image"]
    assert {m["mountPath"] for m in init["volumeMounts"]} == {"/var/lib/kafka/data", "/format"}
    off = one(helm.render("iotpipe-platform", release="p", extra=["--set", "kafka.transactionVersion=0"]),
              "StatefulSet", "p-kafka")
    assert "initContainers" not in off["spec"]["template"]["spec"]


def test_platform_grafana_only(helm: Helm) -> None:
    docs = helm.render("iotpipe-platform", values=[VALUES_DIR / "iotpipe-platform.grafana-only.yaml"])
    assert {d["metadata"]["labels"]["app.kubernetes.io/component"] for d in docs} == {"grafana"}
    assert by_kind(docs, "Ingress") == []
    assert one(docs, "Service")["spec"]["type"] == "NodePort"
    names = {d["metadata"]["name"] for d in by_kind(docs, "ConfigMap")}
    assert not any(n.endswith("-dashboards") for n in names), "dashboards not provisioned"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    (g,) = pod["containers"]  # no sidecar
    assert "serviceAccountName" not in pod
    assert by_kind(docs, "ServiceAccount") == [] and by_kind(docs, "Role") == []
    assert env_of(g)["GF_PLUGINS_PREINSTALL_SYNC"] == ""
    assert "GF_SERVER_ROOT_URL" not in env_of(g)
    assert env_of(g)["IOTPIPE_BRIDGE_URL"] == "http://ws-bridge.iot.svc.cluster.local:8080"  # trailing / dropped


def test_platform_dashboards_configmap_carries_every_dashboard_file(helm: Helm) -> None:
    files = sorted((REPO_ROOT / "charts" / "iotpipe-platform" / "files" / "grafana" / "dashboards").glob("*.json"))
    docs = helm.render("iotpipe-platform", release="demo")
    cm = one(docs, "ConfigMap", "demo-grafana-dashboards")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"]["grafana_folder"] == "iotpipe"
    data = cm.get("data") or {}
    assert sorted(data) == [f.name for f in files]
    for f in files:
        assert json.loads(data[f.name]) == json.loads(f.read_text(encoding="utf-8"))


def test_the_sample_pipeline_points_at_the_platform_chart(helm: Helm) -> None:
    """examples/pipeline.yaml names the services of this chart installed as release "platform" in namespace "iot"."""
    sample = yaml.safe_load((REPO_ROOT / "examples" / "pipeline.yaml").read_text(encoding="utf-8"))
    docs = helm.render("iotpipe-platform", release="platform", namespace="iot")
    services = {d["metadata"]["name"]: d for d in by_kind(docs, "Service")}

    def address(service: str, port_name: str) -> str:
        port = next(p["port"] for p in services[service]["spec"]["ports"] if p["name"] == port_name)
        return f"{service}.iot.svc:{port}"

    assert sample["spec"]["kafka"]["bootstrapServers"] == address("platform-kafka", "client")
    thrift = sample["spec"]["hbase"]["thrift"]
    assert f"{thrift['host']}:{thrift['port']}" == address("platform-hbase", "thrift")
    grafana = next(c for c in one(docs, "Deployment", "platform-grafana")["spec"]["template"]["spec"]["containers"]
                   if c["name"] == "grafana")  # fmt: skip
    bridge_port = sample["spec"]["bridge"]["service"]["port"]
    assert env_of(grafana)["IOTPIPE_BRIDGE_URL"] == f"http://{sample['metadata']['name']}-bridge.iot.svc:{bridge_port}"


def test_platform_probes_reach_what_listens(helm: Helm) -> None:
    """HBase's ZooKeeper listens on the pod's loopback only (hbase-site.xml), so a tcpSocket probe, which dials the pod
    IP, never passes and the kubelet restarts HBase: its probes connect to 127.0.0.1:2181 from inside the container.
    Every start-up probe allows 10 minutes (JVMs on a busy node)."""
    docs = helm.render("iotpipe-platform", release="platform", namespace="iot")
    site = one(docs, "ConfigMap", "platform-hbase-conf")["data"]["hbase-site.xml"]
    assert "<name>hbase.zookeeper.quorum</name><value>localhost</value>" in site
    hbase, thrift = one(docs, "StatefulSet", "platform-hbase")["spec"]["template"]["spec"]["containers"]
    for probe in (hbase["startupProbe"], hbase["livenessProbe"]):
        assert probe["exec"]["command"] == ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/2181"]
    assert thrift["startupProbe"]["tcpSocket"] == {"port": "thrift"}  # Thrift listens on 0.0.0.0
    (kafka,) = one(docs, "StatefulSet", "platform-kafka")["spec"]["template"]["spec"]["containers"]
    operator = operator_container(helm.render("iotpipe-operator"))
    for probe in (hbase["startupProbe"], thrift["startupProbe"], kafka["startupProbe"], operator["startupProbe"]):
        assert probe["periodSeconds"] * probe["failureThreshold"] >= 600


def test_platform_hbase_zookeeper_sessions_outlast_a_busy_node(helm: Helm) -> None:
    """Standalone HBase takes its ZooKeeper session timeout from zookeeper.session.timeout.localHBaseCluster (10 s by
    default), capped by the embedded ZooKeeper's maxSessionTimeout (20 ticks: 40 s): on the local cluster at load 70
    the session expired and master and RegionServer aborted while their container kept running. Three minutes now."""
    docs = helm.render("iotpipe-platform", release="platform", namespace="iot")
    site = one(docs, "ConfigMap", "platform-hbase-conf")["data"]["hbase-site.xml"]
    for key in ("zookeeper.session.timeout.localHBaseCluster", "zookeeper.session.timeout",
                "hbase.zookeeper.property.maxSessionTimeout"):
        assert f"<name>{key}</name><value>180000</value>" in site
    # and the master 15 minutes to initialise (LocalHBaseCluster's 200 s ran out at load 80: "Master not initialized")
    assert "<name>hbase.master.init.timeout.localHBaseCluster</name><value>900000</value>" in site
