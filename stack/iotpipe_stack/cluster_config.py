"""The local cluster's address plan and the config files of its node (pure: text in, text out; no I/O).

One cluster = one *slot* (1..200). The node (containerd, kubelet, kube-proxy, CNI, pods) lives in a network
namespace of its own, joined to the host by a veth pair; the control plane (etcd, kube-apiserver, controller-manager,
scheduler) runs on the host:

    host   iotpk<slot>  10.234.<slot>.1/30   the API server listens here (and only here)
    node   eth0         10.234.<slot>.2/30   the node's InternalIP: kubelet :10250
    pods   cni0         10.235.<slot>.0/24   CNI bridge; the host routes it via the node address
    Services            10.0.0.0/24          kube-proxy's iptables rules, inside the node namespace only

So iptables chains, the bridge and every pod interface live in the node's namespace and vanish with it, and two
clusters (a developer's `make cluster` and a test session) can run side by side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from iotpipe_stack.settings import LOOPBACK

SERVICE_CIDR = "10.0.0.0/24"
DNS_SERVICE_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "iotpipe-node"
MAX_SLOT = 200
#: the pause ("sandbox") image is a local one: busybox-static sleeping (no registry is reachable)
PAUSE_IMAGE = "localhost/iotpipe/pause:1"


@dataclass(frozen=True)
class AddressPlan:
    """The addresses of cluster number ``slot``."""

    slot: int

    def __post_init__(self) -> None:
        if not 1 <= self.slot <= MAX_SLOT:
            raise ValueError(f"cluster slot must be 1..{MAX_SLOT}, got {self.slot}")

    @property
    def host_link(self) -> str:
        """The host end of the veth pair (the node end is eth0 inside the node namespace)."""
        return f"iotpk{self.slot}"

    @property
    def host_ip(self) -> str:
        return f"10.234.{self.slot}.1"

    @property
    def node_ip(self) -> str:
        return f"10.234.{self.slot}.2"

    @property
    def link_prefix(self) -> int:
        return 30

    @property
    def pod_cidr(self) -> str:
        return f"10.235.{self.slot}.0/24"


#: the longest Unix socket path containerd accepts (it refuses "> 104" for every platform; Linux allows 107)
SOCKET_PATH_MAX = 104


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps its state, under the cluster home."""

    home: Path

    @property
    def sockets(self) -> tuple[Path, ...]:
        """The Unix sockets the node's programs create under the home: containerd's two, the kubelet's two."""
        return (self.containerd_socket, Path(f"{self.containerd_socket}.ttrpc"),
                self.kubelet_dir / "device-plugins" / "kubelet.sock",
                self.kubelet_dir / "pod-resources" / "kubelet.sock")

    def socket_problem(self) -> str | None:
        """Why this home cannot hold the node's sockets (a path too long for a Unix socket), or None."""
        longest = max(self.sockets, key=lambda p: len(str(p)))
        if len(str(longest)) <= SOCKET_PATH_MAX:
            return None
        room = SOCKET_PATH_MAX - (len(str(longest)) - len(str(self.home)))
        return (f"the cluster home {self.home} is too long: the node's socket {longest} would have "
                f"{len(str(longest))} characters, and Unix sockets allow {SOCKET_PATH_MAX}; choose a home of at most "
                f"{room} characters (--home)")

    @property
    def containerd_root(self) -> Path:
        """Images and snapshots: kept by `cluster down`, so loaded images survive a restart."""
        return self.home / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.home / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.home / "containerd" / "containerd.sock"

    @property
    def containerd_config(self) -> Path:
        return self.home / "containerd" / "config.toml"

    @property
    def cni_conf_dir(self) -> Path:
        return self.home / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.home / "cni" / "ipam"

    @property
    def kubelet_dir(self) -> Path:
        return self.home / "kubelet"

    @property
    def kubelet_config(self) -> Path:
        return self.home / "kubelet-config.yaml"

    @property
    def kube_proxy_config(self) -> Path:
        return self.home / "kube-proxy-config.yaml"

    @property
    def resolv_conf(self) -> Path:
        return self.home / "resolv.conf"

    @property
    def netns(self) -> Path:
        """The node's network namespace, kept alive by a bind mount on this file."""
        return self.home / "netns"


def _toml_str(value: str | Path) -> str:
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def containerd_config(paths: NodePaths, cni_bin_dir: str = "/usr/lib/cni") -> str:
    """containerd 1.6 config: own root/state/socket, CRI with runc (cgroupfs), local pause image, CNI bridge.

    restrict_oom_score_adj: the VMs lack CAP_SYS_RESOURCE, and the sandbox's oom_score_adj -998 makes runc fail with
    "can't get final child's PID from pipe". netns_mounts_under_state_dir keeps pod namespaces under the cluster home.
    """
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join([
        "version = 2",
        f"root = {_toml_str(paths.containerd_root)}",
        f"state = {_toml_str(paths.containerd_state)}",
        "",
        "[grpc]",
        f"  address = {_toml_str(paths.containerd_socket)}",
        "[ttrpc]",
        f"  address = {_toml_str(str(paths.containerd_socket) + '.ttrpc')}",
        "[debug]",
        '  address = ""',
        "[metrics]",
        '  address = ""',
        "",
        '[plugins."io.containerd.internal.v1.opt"]',
        f"  path = {_toml_str(paths.home / 'containerd' / 'opt')}",
        f"[{cri}]",
        f"  sandbox_image = {_toml_str(PAUSE_IMAGE)}",
        "  restrict_oom_score_adj = true",
        "  netns_mounts_under_state_dir = true",
        "  enable_selinux = false",
        '  stream_server_address = "127.0.0.1"',
        f"[{cri}.containerd]",
        '  snapshotter = "overlayfs"',
        '  default_runtime_name = "runc"',
        f"[{cri}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        f"[{cri}.containerd.runtimes.runc.options]",
        "  SystemdCgroup = false",
        f"[{cri}.cni]",
        f"  bin_dir = {_toml_str(cni_bin_dir)}",
        f"  conf_dir = {_toml_str(paths.cni_conf_dir)}",
        "  max_conf_num = 1",
        "",
    ])


def cni_conflist(plan: AddressPlan, paths: NodePaths) -> str:
    """A bridge network (cni0, gateway, hairpin for Services that loop back) with host-local IPAM + portmap."""
    doc = {
        "cniVersion": "0.4.0",
        "name": "iotpipe",
        "plugins": [
            {
                "type": "bridge", "bridge": "cni0", "isGateway": True, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": plan.pod_cidr}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": str(paths.cni_ipam_dir)},
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }
    return json.dumps(doc, indent=1)


def kubelet_config(plan: AddressPlan, paths: NodePaths) -> str:
    """KubeletConfiguration (JSON is YAML) with the settings these machines need (cgroup v1 hybrid, no
    CAP_SYS_RESOURCE): no QoS cgroups, no node-allocatable enforcement, no eviction or image GC that would remove
    the locally imported images. The kubelet API on the node address is reachable from this host only (the veth) and
    accepts the API server's anonymous requests (logs, exec, port-forward)."""
    doc = {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "localStorageCapacityIsolation": False,
        "containerRuntimeEndpoint": f"unix://{paths.containerd_socket}",
        "address": plan.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        "resolvConf": str(paths.resolv_conf),
        "podLogsDir": str(paths.home / "pod-logs"),
        "evictionHard": {"memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "maxPods": 110,
    }
    return json.dumps(doc, indent=1)


def control_plane_argv(binary: Path, kubeconfig: Path, port: int, *flags: str) -> list[str]:
    """kube-controller-manager or kube-scheduler on the host: the admin kubeconfig for everything, its secure port on
    loopback, no leader election (one of each), then its own ``flags``."""
    return [str(binary), f"--kubeconfig={kubeconfig}", f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}", f"--bind-address={LOOPBACK}", f"--secure-port={port}",
            "--leader-elect=false", *flags, "--v=1"]  # fmt: skip


def kubelet_argv(binary: Path, plan: AddressPlan, paths: NodePaths, kubeconfig: Path) -> list[str]:
    """The kubelet (run inside the node namespace): its config file, the node address, the fixed node name."""
    return [str(binary), f"--config={paths.kubelet_config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={paths.kubelet_dir}", f"--node-ip={plan.node_ip}", f"--hostname-override={NODE_NAME}",
            "--v=1"]  # fmt: skip


def kube_proxy_config(plan: AddressPlan, kubeconfig: Path) -> str:
    """KubeProxyConfiguration: iptables mode; leaves conntrack sysctls alone (not all are writable in a namespace)."""
    doc = {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clusterCIDR": plan.pod_cidr,
        "hostnameOverride": NODE_NAME,
        "bindAddress": plan.node_ip,
        "healthzBindAddress": "127.0.0.1:10256",
        "metricsBindAddress": "127.0.0.1:10249",
        "nodePortAddresses": ["primary"],
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "clientConnection": {"kubeconfig": str(kubeconfig)},
    }
    return json.dumps(doc, indent=1)

