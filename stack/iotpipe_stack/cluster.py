"""A real single-node Kubernetes cluster on this machine, for tests and local work (like kind, without a container).

    python -m iotpipe_stack.cluster up      # start (or fail if running), print the env lines below, return
    python -m iotpipe_stack.cluster down    # stop everything; no process, mount, interface or iptables chain stays
    python -m iotpipe_stack.cluster env     # KUBECONFIG=... CONTAINERD_ADDRESS=... CONTAINERD_NAMESPACE=k8s.io
    python -m iotpipe_stack.cluster status  # what runs
    python -m iotpipe_stack.cluster build   # build/cache the binaries only

Control plane on the host: etcd (loopback), kube-apiserver (on the host end of the node's veth pair),
kube-controller-manager, kube-scheduler. The node in a network namespace of its own: containerd (its own root, state
and socket under the home; runc; images in the ``k8s.io`` namespace), kubelet, kube-proxy (iptables), a CNI bridge.
CoreDNS (built from its Go module) runs as a Deployment. No ingress controller (see docs/local-cluster.md).
Address plan, config files and command lines: iotpipe_stack.cluster_config (pure). Needs root and the Debian packages
in iotpipe_stack.cluster_tools.PREREQUISITES (installed with apt-get when missing).

Env: IOTPIPE_CLUSTER_HOME (default $IOTPIPE_HOME/cluster, IOTPIPE_HOME defaulting to ./.iotpipe), IOTPIPE_CACHE
(~/.cache/iotpipe), IOTPIPE_K8S_VERSION (1.36.3), IOTPIPE_COREDNS_VERSION (1.15.0), IOTPIPE_CLUSTER_TIMEOUT (300 s,
per start-up step).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack import cluster_net, supervisor
from iotpipe_stack.cluster_addons import coredns_manifests
from iotpipe_stack.cluster_config import (
    NODE_NAME,
    AddressPlan,
    NodePaths,
    cni_conflist,
    containerd_config,
    control_plane_argv,
    kube_proxy_config,
    kubelet_argv,
    kubelet_config,
)
from iotpipe_stack.cluster_storage import STORAGE_CLASS
from iotpipe_stack.cluster_tools import (
    COREDNS_VERSION,
    ClusterBinaries,
    Progress,
    ensure_cluster_binaries,
    image_archives,
    install_prerequisites,
    print_progress,
)
from iotpipe_stack.kube import KubeAPIServer, cache_dir
from iotpipe_stack.ports import free_ports

CONTAINERD_NAMESPACE = "k8s.io"
POD_LOG_LINKS = Path("/var/log/containers")  # the kubelet's fixed symlink directory


def default_home(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("IOTPIPE_CLUSTER_HOME"):
        return Path(env["IOTPIPE_CLUSTER_HOME"]).expanduser().resolve()
    return (Path(env.get("IOTPIPE_HOME") or "./.iotpipe").expanduser() / "cluster").resolve()


class Cluster:
    """One cluster under ``home``. ``start()`` brings it up and returns; ``stop()`` (also from a new object on the
    same home, e.g. `cluster down`) tears it down and checks that nothing stays behind."""

    COMPONENTS = ("cluster-storage", "kube-scheduler", "kube-controller-manager", "kube-proxy", "kubelet",
                  "containerd")

    def __init__(self, home: Path, bins: ClusterBinaries | None = None, cache: Path | None = None,
                 progress: Progress = print_progress, die_with_parent: bool = False,
                 timeout: float = 300.0) -> None:
        self.home = home.resolve()
        self.cache = cache or cache_dir()
        self._bins = bins
        self.progress = progress
        self.die_with_parent = die_with_parent
        self.timeout = timeout
        self.paths = NodePaths(self.home)
        self.api: KubeAPIServer | None = None
        self.timings: dict[str, float] = {}

    # -- files -------------------------------------------------------------------------------------------------
    @property
    def state_file(self) -> Path:
        return self.home / "cluster.json"

    @property
    def kubeconfig(self) -> Path:
        return self.home / "kubeconfig-admin.yaml"

    @property
    def containerd_address(self) -> Path:
        return self.paths.containerd_socket

    def files(self, name: str) -> supervisor.ProcFiles:
        return supervisor.ProcFiles(name, self.home / "run" / f"{name}.pid", self.home / "logs" / f"{name}.log")

    def plan(self) -> AddressPlan | None:
        try:
            return AddressPlan(int(json.loads(self.state_file.read_text())["slot"]))
        except (FileNotFoundError, KeyError, ValueError):
            return None

    @property
    def bins(self) -> ClusterBinaries:
        if self._bins is None:
            self._bins = ensure_cluster_binaries(self.cache, progress=self.progress)
        return self._bins

    def env_lines(self) -> list[str]:
        """What other tools need: `make images` loads into CONTAINERD_ADDRESS, namespace CONTAINERD_NAMESPACE."""
        return [f"KUBECONFIG={self.kubeconfig}", f"CONTAINERD_ADDRESS={self.containerd_address}",
                f"CONTAINERD_NAMESPACE={CONTAINERD_NAMESPACE}", f"IOTPIPE_CLUSTER_HOME={self.home}"]

    def running(self) -> list[str]:
        names = [*self.COMPONENTS, "kube-apiserver", "etcd"]
        return [n for n in names if supervisor.running_pid(self.files(n).pid_file) is not None]

    # -- helpers -------------------------------------------------------------------------------------------------
    @contextmanager
    def _step(self, name: str) -> Iterator[None]:
        t0 = time.monotonic()
        yield
        self.timings[name] = time.monotonic() - t0
        self.progress(f"{name}: {self.timings[name]:.1f} s")

    def kubectl(self, *args: str, input_text: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([str(self.bins.kube.kubectl), f"--kubeconfig={self.kubeconfig}", *args],
                              input=input_text, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise StackError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return cluster_net.run(["ctr", f"--address={self.containerd_address}", "-n", CONTAINERD_NAMESPACE, *args],
                               check=check, timeout=timeout)

    def _start(self, name: str, argv: Sequence[str]) -> None:
        supervisor.start(self.files(name), argv, die_with_parent=self.die_with_parent)

    def _alive_or_fail(self, names: Sequence[str]) -> None:
        for name in names:
            files = self.files(name)
            if supervisor.running_pid(files.pid_file) is None:
                raise StackError(f"{name} exited during start-up; last log lines of {files.log_file}:\n"
                                 f"{supervisor.tail(files.log_file, 40)}")

    def _wait(self, what: str, ready: Callable[[], bool], watch: Sequence[str], log: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            self._alive_or_fail(watch)
            if ready():
                return
            time.sleep(1.0)
        files = self.files(log)
        raise StackError(f"{what} not ready after {self.timeout:.0f} s; last log lines of {files.log_file}:\n"
                         f"{supervisor.tail(files.log_file, 40)}")

    def _ok(self, *args: str) -> bool:
        try:
            return self.kubectl(*args, check=False, timeout=30).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    # -- start ---------------------------------------------------------------------------------------------------
    def start(self) -> None:
        problem = self.paths.socket_problem()
        if problem is not None:  # containerd would fail later with "unix socket path too long"
            raise StackError(problem)
        if self.running():
            raise StackError(f"a cluster is already running under {self.home} ({', '.join(self.running())}); "
                             "stop it first: make cluster-down")
        if self.plan() is not None:  # a run that was never stopped (its test session killed): its shims live on
            self.progress(f"a previous cluster under {self.home} was not stopped: stopping what is left of it")
            self.stop()
        t0 = time.monotonic()
        with self._step("prerequisites (Debian packages)"):
            install_prerequisites(self.progress)
        with self._step("binaries (cached per version)"):
            bins = self.bins
        with self._step("local images (pause, busybox, coredns)"):
            archives = image_archives(self.cache, bins.coredns)
        try:
            self._start_all(bins, archives)
        except BaseException:
            self.progress("start-up failed: stopping what started")
            try:
                self.stop()
            except StackError as exc:
                self.progress(f"clean-up after the failed start: {exc}")
            raise
        self.timings["cluster start (total)"] = time.monotonic() - t0
        self.progress(f"cluster ready in {self.timings['cluster start (total)']:.1f} s; KUBECONFIG={self.kubeconfig}")

    def _wipe_runtime_state(self) -> None:
        """Runtime state of a previous run goes; containerd's root (loaded images) stays."""
        left = cluster_net.unmount_all_under(self.home)
        if left:
            raise StackError(f"cannot unmount {', '.join(left)}")
        for sub in ("etcd", "kubelet", "cni", "run", "pki", "pod-logs", "volumes"):
            shutil.rmtree(self.home / sub, ignore_errors=True)
        shutil.rmtree(self.paths.containerd_state, ignore_errors=True)
        for f in (self.paths.netns, self.state_file, *self.home.glob("kubeconfig-*.yaml")):
            f.unlink(missing_ok=True)

    def _start_all(self, bins: ClusterBinaries, archives: Sequence[Path]) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self._wipe_runtime_state()
        with self._step("node network (namespace, veth, routes)"), cluster_net.slot_lock():
            plan = AddressPlan(cluster_net.free_slot())
            self.state_file.write_text(json.dumps({"slot": plan.slot}))
            cluster_net.create_node_network(plan, self.paths)
        self.progress(f"slot {plan.slot}: API on {plan.host_ip}, node {plan.node_ip}, pods {plan.pod_cidr}")
        self._write_configs(plan)
        with self._step("etcd + kube-apiserver"):
            self.api = KubeAPIServer(self.home, bins.kube, progress=self.progress,
                                     die_with_parent=self.die_with_parent, address=plan.host_ip,
                                     service_accounts=True,
                                     extra_args=["--kubelet-preferred-address-types=InternalIP"])
            self.api.start(self.timeout)
        with self._step("containerd"):
            self._start("containerd", cluster_net.in_node(
                self.paths, ["containerd", f"--config={self.paths.containerd_config}"]))
            self._wait("containerd", lambda: self.containerd_address.exists() and self.ctr(
                "version", check=False, timeout=30).returncode == 0, ["containerd"], "containerd")
        with self._step("images imported into containerd"):
            for archive in archives:
                self.ctr("images", "import", str(archive))
        with self._step("controller-manager, scheduler, kubelet: node Ready"):
            self._start_control_plane()
            self._start_kubelet(plan)
            self._wait("node", self._node_ready, ["kubelet", "containerd", "kube-controller-manager"], "kubelet")
        with self._step("kube-proxy"):
            self._start("kube-proxy", cluster_net.in_node(self.paths, [
                str(bins.proxy), f"--config={self.paths.kube_proxy_config}", "--v=1"]))
            self._wait("kube-proxy", self._proxy_ready, ["kube-proxy"], "kube-proxy")
        with self._step("service accounts and root CA published"):
            self._wait("controller-manager", lambda: self._ok("-n", "default", "get", "serviceaccount/default",
                                                              "configmap/kube-root-ca.crt"),
                       ["kube-controller-manager"], "kube-controller-manager")
        with self._step("storage provisioner (default StorageClass local)"):
            self._start("cluster-storage", [sys.executable, "-m", "iotpipe_stack.cluster_storage",
                                            f"--kubeconfig={self.kubeconfig}", f"--kubectl={bins.kube.kubectl}",
                                            f"--root={self.home / 'volumes'}"])
            self._wait("storage provisioner", lambda: self._ok("get", "storageclass", STORAGE_CLASS),
                       ["cluster-storage"], "cluster-storage")
        with self._step("CoreDNS"):
            doc = {"apiVersion": "v1", "kind": "List", "items": coredns_manifests(COREDNS_VERSION)}
            self.kubectl("apply", "-f", "-", input_text=json.dumps(doc))
            self._wait("CoreDNS", lambda: self._ok("-n", "kube-system", "wait", "--for=condition=Available",
                                                   "deployment/coredns", "--timeout=5s"),
                       ["kubelet", "kube-proxy"], "kubelet")

    def _write_configs(self, plan: AddressPlan) -> None:
        p = self.paths
        for d in (p.containerd_root, p.containerd_state, p.cni_conf_dir, p.cni_ipam_dir, p.kubelet_dir):
            d.mkdir(parents=True, exist_ok=True)
        p.containerd_config.write_text(containerd_config(p))
        (p.cni_conf_dir / "10-iotpipe.conflist").write_text(cni_conflist(plan, p))
        p.kubelet_config.write_text(kubelet_config(plan, p))
        p.kube_proxy_config.write_text(kube_proxy_config(plan, self.kubeconfig))
        p.resolv_conf.write_text("# the local cluster has no upstream DNS\n")

    def _start_control_plane(self) -> None:
        bins = self.bins
        assert self.api is not None
        cm_port, sched_port = free_ports(2)
        pki = self.home / "pki"
        self._start("kube-controller-manager", control_plane_argv(
            bins.controller_manager, self.kubeconfig, cm_port,
            f"--service-account-private-key-file={pki / 'sa.key'}", f"--root-ca-file={pki / 'apiserver.crt'}",
            "--use-service-account-credentials=true", "--controllers=*"))
        self._start("kube-scheduler", control_plane_argv(bins.scheduler, self.kubeconfig, sched_port))

    def _start_kubelet(self, plan: AddressPlan) -> None:
        argv = kubelet_argv(self.bins.kubelet, plan, self.paths, self.kubeconfig)
        self._start("kubelet", cluster_net.in_node(self.paths, argv))

    def _node_ready(self) -> bool:
        proc = self.kubectl("get", "node", NODE_NAME, "-o",
                            'jsonpath={.status.conditions[?(@.type=="Ready")].status}', check=False, timeout=30)
        return proc.returncode == 0 and proc.stdout.strip() == "True"

    def _proxy_ready(self) -> bool:
        proc = cluster_net.run(cluster_net.in_node(self.paths, ["iptables", "-t", "nat", "-S", "KUBE-SERVICES"]),
                               check=False)
        return proc.returncode == 0 and "default/kubernetes" in proc.stdout

    # -- stop ----------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop everything, remove every container, mount, the veth pair and the namespace; raise if anything
        stays behind."""
        plan = self.plan()
        for name in ("kubelet", "kube-proxy"):
            supervisor.stop(self.files(name))
        if supervisor.running_pid(self.files("containerd").pid_file) is not None:
            self._remove_containers()
        supervisor.stop(self.files("containerd"))
        cluster_net.kill_leftovers(f"-address {self.containerd_address}")
        for name in ("cluster-storage", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"):
            supervisor.stop(self.files(name))
        if plan is not None:
            cluster_net.delete_node_network(plan, self.paths)
        left_mounts = cluster_net.unmount_all_under(self.home)
        self._remove_pod_log_links()
        problems = []
        procs = sorted({pid for marker in self._markers() for pid in cluster_net.pids_mentioning(marker)})
        if procs:
            problems.append(f"processes {procs}")
        if left_mounts:
            problems.append(f"mounts {left_mounts}")
        if plan is not None and cluster_net.link_exists(plan.host_link):
            problems.append(f"interface {plan.host_link}")
        self.state_file.unlink(missing_ok=True)
        if problems:
            raise StackError(f"cluster under {self.home} stopped, but left behind: {'; '.join(problems)}")

    def _markers(self) -> list[str]:
        """Strings on the command line of every process of this cluster (never of the shell that runs `down`)."""
        return [str(self.containerd_address), str(self.kubeconfig), str(self.home / "etcd"),
                str(self.paths.kubelet_config)]

    def _remove_containers(self) -> None:
        """Kill and delete every container (and pod sandbox) through containerd, so runc removes their cgroups."""
        listed = self.ctr("containers", "list", "--quiet", check=False)
        ids = listed.stdout.split() if listed.returncode == 0 else []
        for cid in ids:
            self.ctr("tasks", "kill", "--signal", "SIGKILL", cid, check=False, timeout=30)
        for cid in ids:
            self.ctr("tasks", "delete", "--force", cid, check=False, timeout=60)
            self.ctr("containers", "delete", cid, check=False, timeout=60)

    def _remove_pod_log_links(self) -> None:
        if not POD_LOG_LINKS.is_dir():
            return
        for link in POD_LOG_LINKS.iterdir():
            try:
                if link.is_symlink() and str(self.home) in os.readlink(link):
                    link.unlink()
            except OSError:
                continue


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iotpipe_stack.cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "down", "env", "status", "build"))
    parser.add_argument("--home", help="cluster state directory (default: $IOTPIPE_CLUSTER_HOME, else "
                                       "$IOTPIPE_HOME/cluster, IOTPIPE_HOME defaulting to ./.iotpipe)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)  # a stopped `up` cleans up what it started (see Cluster.start)
    home = Path(args.home).resolve() if args.home else default_home()
    timeout = float(os.environ.get("IOTPIPE_CLUSTER_TIMEOUT", "300"))
    cluster = Cluster(home, timeout=timeout)
    try:
        if args.command == "build":
            bins = ensure_cluster_binaries()
            for path in (bins.kubelet, bins.controller_manager, bins.scheduler, bins.proxy, bins.coredns):
                print(path)
        elif args.command == "up":
            cluster.start()
            print("\n".join(cluster.env_lines()))
        elif args.command == "down":
            cluster.stop()
            print_progress(f"stopped; nothing left running under {home}")
        elif args.command == "env":
            if not cluster.running():
                raise StackError(f"no cluster runs under {home}: make cluster")
            print("\n".join(cluster.env_lines()))
        else:
            running = cluster.running()
            print(f"cluster home {home}: " + (f"running: {', '.join(running)}" if running else "not running"))
            return 0 if running else 3
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
