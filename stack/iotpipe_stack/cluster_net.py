"""I/O edge of the local cluster's host plumbing: the node's network namespace, its veth pair, mounts, leftovers.

Needs root (the cluster is a development/test tool for these machines, like kind). Commands used: ip, unshare,
nsenter, umount (iproute2 and util-linux).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack import supervisor
from iotpipe_stack.cluster_config import MAX_SLOT, AddressPlan, NodePaths
from iotpipe_stack.install import file_lock

SLOT_LOCK = Path("/run/lock/iotpipe-cluster-slots.lock")


def run(argv: Sequence[str], check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise StackError(f"`{' '.join(argv)}` failed ({proc.returncode}): {(proc.stderr or proc.stdout).strip()}")
    return proc


def in_node(paths: NodePaths, argv: Sequence[str]) -> list[str]:
    """argv run inside the node's network namespace (host mount namespace, so the kubelet and containerd share
    volume mounts)."""
    return ["nsenter", f"--net={paths.netns}", "--", *argv]


def link_exists(name: str) -> bool:
    return Path("/sys/class/net", name).exists()


@contextlib.contextmanager
def slot_lock() -> Iterator[None]:
    """Held while a cluster picks its slot and creates its host link, so two starting clusters never pick the same."""
    with file_lock(SLOT_LOCK):
        yield


def free_slot() -> int:
    """The lowest slot whose host link does not exist (call under slot_lock)."""
    for slot in range(1, MAX_SLOT + 1):
        if not link_exists(AddressPlan(slot).host_link):
            return slot
    raise StackError(f"all {MAX_SLOT} cluster slots are in use (host links iotpk1..iotpk{MAX_SLOT})")


def _write_sysctl(paths: NodePaths, key: str, value: str) -> None:
    proc_path = "/proc/sys/" + key.replace(".", "/")
    run(in_node(paths, ["sh", "-c", f"echo {value} > {proc_path}"]))


def create_node_network(plan: AddressPlan, paths: NodePaths) -> None:
    """The node's network namespace (bind-mounted on paths.netns) and the veth pair that joins it to the host."""
    paths.netns.parent.mkdir(parents=True, exist_ok=True)
    paths.netns.touch()
    run(["unshare", f"--net={paths.netns}", "true"])
    run(in_node(paths, ["ip", "link", "set", "lo", "up"]))
    run(in_node(paths, ["ip", "link", "add", "eth0", "type", "veth", "peer", "name", plan.host_link,
                        "netns", str(os.getpid())]))
    run(["ip", "addr", "add", f"{plan.host_ip}/{plan.link_prefix}", "dev", plan.host_link])
    run(["ip", "link", "set", plan.host_link, "up"])
    run(in_node(paths, ["ip", "addr", "add", f"{plan.node_ip}/{plan.link_prefix}", "dev", "eth0"]))
    run(in_node(paths, ["ip", "link", "set", "eth0", "up"]))
    run(in_node(paths, ["ip", "route", "add", "default", "via", plan.host_ip]))
    # the host reaches pods (API server -> webhooks, service proxy) through the node
    run(["ip", "route", "add", plan.pod_cidr, "via", plan.node_ip, "dev", plan.host_link])
    _write_sysctl(paths, "net.ipv4.ip_forward", "1")
    with contextlib.suppress(StackError):  # exists when br_netfilter is loaded: Service traffic across the bridge
        _write_sysctl(paths, "net.bridge.bridge-nf-call-iptables", "1")


def delete_node_network(plan: AddressPlan, paths: NodePaths) -> None:
    """Delete the veth pair (its routes go with it) and release the namespace (its bridge, pod links and iptables
    chains go when no process is left in it)."""
    if link_exists(plan.host_link):
        run(["ip", "link", "del", plan.host_link], check=False)
    if paths.netns.exists() and paths.netns in [Path(m) for m in mounts_under(paths.netns.parent)]:
        run(["umount", str(paths.netns)], check=False)


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below root in this mount namespace, deepest first."""
    prefix = str(root.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = _unescape(line.split()[4])
        if point == prefix or point.startswith(prefix + "/"):
            found.append(point)
    return sorted(set(found), key=lambda p: (-p.count("/"), p))


def unmount_all_under(root: Path) -> list[str]:
    """Unmount everything below root (pod volumes, overlay rootfs, namespace files); returns what stayed mounted."""
    for _ in range(3):
        points = mounts_under(root)
        if not points:
            return []
        for point in points:
            if run(["umount", point], check=False).returncode != 0:
                run(["umount", "-l", point], check=False)
    return mounts_under(root)


def pids_mentioning(text: str) -> list[int]:
    """Processes whose command line contains text (our home path: containerd shims, node components)."""
    found = []
    me = os.getpid()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit() or int(d.name) == me:
            continue
        try:
            cmdline = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(d.name))
    return found


def kill_leftovers(marker: str, timeout: float = 20.0) -> list[int]:
    """SIGKILL every process with marker on its command line (containerd shims: "-address <socket>") and everything
    they started (containers), containers first. Returns the pids still alive after timeout."""
    roots = pids_mentioning(marker)
    victims: list[int] = []
    for pid in roots:
        victims.extend(supervisor.descendants(pid))
    victims.extend(roots)
    for pid in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    alive = victims
    while alive and time.monotonic() < deadline:
        for pid in alive:
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        time.sleep(0.2)
        alive = [p for p in alive if _alive(p)]
    return alive


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")
