"""The local cluster's pure parts: address plan, node config files, local images, CoreDNS add-on (nothing started)."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import tarfile
from pathlib import Path

import pytest

from iotcommon.errors import StackError
from iotpipe_stack import cluster, cluster_tools
from iotpipe_stack.cluster_addons import (
    BUSYBOX_IMAGE,
    COREDNS_PORT,
    coredns_image_ref,
    coredns_manifests,
    local_images,
)
from iotpipe_stack.cluster_config import (
    DNS_SERVICE_IP,
    PAUSE_IMAGE,
    SERVICE_CIDR,
    SOCKET_PATH_MAX,
    AddressPlan,
    NodePaths,
    cni_conflist,
    containerd_config,
    control_plane_argv,
    kube_proxy_config,
    kubelet_argv,
    kubelet_config,
)
from iotpipe_stack.tiny_images import TinyImage, write_archive


def test_address_plan_of_a_slot() -> None:
    plan = AddressPlan(7)
    assert (plan.host_link, plan.host_ip, plan.node_ip, plan.pod_cidr) == (
        "iotpk7", "10.234.7.1", "10.234.7.2", "10.235.7.0/24")
    link = ipaddress.ip_network(f"{plan.host_ip}/{plan.link_prefix}", strict=False)
    assert ipaddress.ip_address(plan.node_ip) in link


def test_slots_never_share_an_address() -> None:
    nets = [ipaddress.ip_network(n, strict=False) for s in (1, 2, 200) for n in (
        f"{AddressPlan(s).host_ip}/30", AddressPlan(s).pod_cidr)]
    nets.append(ipaddress.ip_network(SERVICE_CIDR))
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1:])
    with pytest.raises(ValueError):
        AddressPlan(0)
    with pytest.raises(ValueError):
        AddressPlan(201)


def test_containerd_keeps_everything_under_the_home(tmp_path: Path) -> None:
    text = containerd_config(NodePaths(tmp_path))
    for needle in (f'root = "{tmp_path}/containerd/root"', f'state = "{tmp_path}/containerd/state"',
                   f'address = "{tmp_path}/containerd/containerd.sock"', "restrict_oom_score_adj = true",
                   "netns_mounts_under_state_dir = true", f'sandbox_image = "{PAUSE_IMAGE}"',
                   'runtime_type = "io.containerd.runc.v2"', f'conf_dir = "{tmp_path}/cni/net.d"'):
        assert needle in text
    assert "/var/lib/containerd" not in text and "/run/containerd" not in text


def test_a_home_too_long_for_the_nodes_sockets_is_refused_with_the_length_that_fits() -> None:
    longest = "/kubelet/device-plugins/kubelet.sock"  # the longest socket path under the home
    fits = Path("/" + "h" * (SOCKET_PATH_MAX - len(longest) - 1))
    assert len(f"{fits}{longest}") == SOCKET_PATH_MAX
    assert NodePaths(fits).socket_problem() is None
    too_long = Path(f"{fits}x")
    problem = NodePaths(too_long).socket_problem()
    assert problem is not None
    assert f"{too_long}{longest}" in problem and f"{SOCKET_PATH_MAX + 1} characters" in problem
    assert f"at most {SOCKET_PATH_MAX - len(longest)} characters" in problem
    # containerd's own sockets are checked too
    assert Path(f"{fits}/containerd/containerd.sock.ttrpc") in NodePaths(fits).sockets
    assert all(str(sock).startswith(f"{fits}/") for sock in NodePaths(fits).sockets)


def test_the_cluster_refuses_a_long_home_before_starting_anything(tmp_path: Path) -> None:
    home = tmp_path / ("h" * SOCKET_PATH_MAX)
    with pytest.raises(StackError, match="too long"):
        cluster.Cluster(home).start()
    assert not home.exists()  # nothing was started or written


def test_cni_bridge_uses_the_slot_pod_range(tmp_path: Path) -> None:
    doc = json.loads(cni_conflist(AddressPlan(3), NodePaths(tmp_path)))
    bridge, portmap = doc["plugins"]
    assert bridge["type"] == "bridge" and bridge["isGateway"] and bridge["hairpinMode"]
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.235.3.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "cni" / "ipam")
    assert portmap["type"] == "portmap"


def test_kubelet_settings_these_machines_need(tmp_path: Path) -> None:
    doc = json.loads(kubelet_config(AddressPlan(2), NodePaths(tmp_path)))
    assert doc["failCgroupV1"] is False and doc["cgroupsPerQOS"] is False and doc["cgroupDriver"] == "cgroupfs"
    assert doc["enforceNodeAllocatable"] == [] and doc["failSwapOn"] is False
    assert doc["containerRuntimeEndpoint"] == f"unix://{tmp_path}/containerd/containerd.sock"
    assert doc["address"] == "10.234.2.2" and doc["clusterDNS"] == [DNS_SERVICE_IP]
    assert doc["imageGCHighThresholdPercent"] == 100  # never garbage-collect the imported images


def test_kube_proxy_runs_iptables_for_the_pod_range(tmp_path: Path) -> None:
    doc = json.loads(kube_proxy_config(AddressPlan(4), tmp_path / "kc.yaml"))
    assert doc["mode"] == "iptables" and doc["clusterCIDR"] == "10.235.4.0/24"
    assert doc["clientConnection"]["kubeconfig"] == str(tmp_path / "kc.yaml")


def test_dns_service_ip_is_in_the_service_range() -> None:
    assert ipaddress.ip_address(DNS_SERVICE_IP) in ipaddress.ip_network(SERVICE_CIDR)


def test_image_archive_is_what_ctr_imports(tmp_path: Path) -> None:
    binary = tmp_path / "tool"
    binary.write_bytes(b"#!/bin/sh\necho hi\n")
    binary.chmod(0o755)
    image = TinyImage("localhost/test/tool:1", {"bin/tool": binary}, {"bin/alias": "tool"},
                      entrypoint=("/bin/tool",), user="65534:65534")
    archive = write_archive(image, tmp_path / "out" / "tool.tar")
    with tarfile.open(archive) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        assert manifest[0]["RepoTags"] == ["localhost/test/tool:1"]
        layer_bytes = tar.extractfile(manifest[0]["Layers"][0]).read()  # type: ignore[union-attr]
        config = json.loads(tar.extractfile(manifest[0]["Config"]).read())  # type: ignore[union-attr]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer_bytes).hexdigest()}"]
    assert (config["os"], config["config"]["Entrypoint"], config["config"]["User"]) == (
        "linux", ["/bin/tool"], "65534:65534")
    layer = tmp_path / "layer.tar"
    layer.write_bytes(layer_bytes)
    with tarfile.open(layer) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["bin"].isdir()
    assert members["bin/tool"].mode == 0o755 and members["bin/tool"].uid == 0
    assert members["bin/alias"].issym() and members["bin/alias"].linkname == "tool"
    again = write_archive(image, tmp_path / "again.tar")
    assert again.read_bytes() == archive.read_bytes()  # reproducible


def test_local_images_are_pause_busybox_coredns(tmp_path: Path) -> None:
    refs = [i.ref for i in local_images(tmp_path / "busybox", tmp_path / "coredns", "9.9.9")]
    assert refs == [PAUSE_IMAGE, BUSYBOX_IMAGE, coredns_image_ref("9.9.9")]


def test_coredns_runs_restricted_behind_kube_dns() -> None:
    objs = {o["kind"]: o for o in coredns_manifests("9.9.9")}
    pod = objs["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] and sc["runAsUser"] != 0 and sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["imagePullPolicy"] == "Never" and container["image"] == coredns_image_ref("9.9.9")
    svc = objs["Service"]["spec"]
    assert svc["clusterIP"] == DNS_SERVICE_IP
    assert {(p["port"], p["targetPort"], p["protocol"]) for p in svc["ports"]} == {
        (53, COREDNS_PORT, "UDP"), (53, COREDNS_PORT, "TCP")}
    assert f".:{COREDNS_PORT}" in objs["ConfigMap"]["data"]["Corefile"]


def test_control_plane_components_bind_loopback_with_the_admin_kubeconfig_and_their_own_flags() -> None:
    kc = Path("/c/kubeconfig-admin.yaml")
    argv = control_plane_argv(Path("/bin/kube-scheduler"), kc, 4321, "--controllers=*")
    assert argv[0] == "/bin/kube-scheduler" and argv[-2:] == ["--controllers=*", "--v=1"]
    for flag in ("kubeconfig", "authentication-kubeconfig", "authorization-kubeconfig"):
        assert f"--{flag}={kc}" in argv
    assert {"--bind-address=127.0.0.1", "--secure-port=4321", "--leader-elect=false"} <= set(argv)


def test_the_kubelet_runs_on_the_node_address_under_the_fixed_node_name(tmp_path: Path) -> None:
    paths, plan = NodePaths(tmp_path), AddressPlan(7)
    argv = kubelet_argv(Path("/bin/kubelet"), plan, paths, tmp_path / "kc.yaml")
    assert argv[0] == "/bin/kubelet"
    assert {f"--config={tmp_path}/kubelet-config.yaml", f"--root-dir={tmp_path}/kubelet", "--node-ip=10.234.7.2",
            "--hostname-override=iotpipe-node", f"--kubeconfig={tmp_path}/kc.yaml"} <= set(argv)


def test_binaries_cached_per_version(tmp_path: Path) -> None:
    bins = cluster_tools.ClusterBinaries.in_cache(tmp_path)
    assert bins.kubelet.name == f"kubelet-v{cluster_tools.K8S_VERSION}"
    assert bins.coredns.name == f"coredns-v{cluster_tools.COREDNS_VERSION}"
    assert bins.proxy in bins.missing()


def test_missing_binaries_fail_with_the_remedy(tmp_path: Path) -> None:
    with pytest.raises(cluster_tools.StackError, match="make cluster-tools"):
        cluster_tools.ensure_cluster_binaries(tmp_path, build=False)


def test_default_home_follows_iotpipe_home(tmp_path: Path) -> None:
    assert cluster.default_home({"IOTPIPE_HOME": str(tmp_path)}) == tmp_path / "cluster"
    assert cluster.default_home({"IOTPIPE_CLUSTER_HOME": str(tmp_path / "c")}) == tmp_path / "c"


def test_env_lines_name_the_containerd_socket(tmp_path: Path) -> None:
    lines = cluster.Cluster(tmp_path).env_lines()
    assert f"CONTAINERD_ADDRESS={tmp_path}/containerd/containerd.sock" in lines
    assert "CONTAINERD_NAMESPACE=k8s.io" in lines
    assert f"KUBECONFIG={tmp_path}/kubeconfig-admin.yaml" in lines


def test_build_script_and_make_targets_exist() -> None:
    makefile = (cluster_tools.REPO_ROOT / "Makefile").read_text()
    for target in ("cluster:", "cluster-down:", "cluster-tools:"):
        assert target in makefile
    assert cluster_tools.BUILD_SCRIPT.is_file()


def _claim(name: str, uid: str, phase: str = "Pending", cls: str = "local", **spec: object) -> dict[str, object]:
    return {"metadata": {"name": name, "namespace": "ns1", "uid": uid},
            "spec": {"storageClassName": cls, "accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": "2Gi"}}, **spec},
            "status": {"phase": phase}}


def test_storage_provisions_pending_claims_of_its_class_once(tmp_path: Path) -> None:
    from iotpipe_stack import cluster_storage as st

    claims = [_claim("a", "u1"), _claim("b", "u2", cls="other"), _claim("c", "u3", phase="Bound"),
              _claim("d", "u4")]
    existing = [{"metadata": {"name": "pvc-u4"}}]
    assert [c["metadata"]["name"] for c in st.claims_to_provision(claims, existing)] == ["a"]  # type: ignore[index]
    pv = st.volume_for_claim(claims[0], tmp_path)
    assert pv["metadata"]["name"] == "pvc-u1"
    assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": "ns1",
                                      "name": "a", "uid": "u1"}
    assert pv["spec"]["capacity"] == {"storage": "2Gi"} and pv["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pv["spec"]["hostPath"]["path"] == str(tmp_path / "pvc-u1")
    assert pv["spec"]["storageClassName"] == st.STORAGE_CLASS == st.storage_class()["metadata"]["name"]


def test_storage_deletes_only_its_released_volumes() -> None:
    from iotpipe_stack import cluster_storage as st

    def pv(name: str, phase: str, ours: bool = True, policy: str = "Delete") -> dict[str, object]:
        ann = {"pv.kubernetes.io/provisioned-by": st.PROVISIONER} if ours else {}
        return {"metadata": {"name": name, "annotations": ann},
                "spec": {"persistentVolumeReclaimPolicy": policy}, "status": {"phase": phase}}

    vols = [pv("a", "Released"), pv("b", "Bound"), pv("c", "Released", ours=False),
            pv("d", "Released", policy="Retain")]
    assert [v["metadata"]["name"] for v in st.volumes_to_delete(vols)] == ["a"]  # type: ignore[index]
