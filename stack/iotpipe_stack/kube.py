"""A real kube-apiserver + etcd on loopback (no controller-manager, scheduler or kubelet), for tests and local work.

Binaries are built from the Go module proxy by ``stack/kube/build.sh`` into ``$IOTPIPE_CACHE/bin/<name>-v<version>``
(``make kube-tools``). ``KubeAPIServer`` picks free loopback ports, keeps everything under one home directory, uses
static-token authentication with RBAC authorisation, and writes a kubeconfig per user.

    python -m iotpipe_stack.kube up [--home DIR]   # start, print KUBECONFIG=..., run until SIGTERM/Ctrl-C
    python -m iotpipe_stack.kube build             # build/cache the binaries only

Without a controller-manager: Deployments get no ReplicaSets or pods, garbage collection does not run, Namespaces
stay Terminating once deleted. CRDs (with CEL), RBAC, Events, watches, finalizers, scale subresources all work.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from iotcommon.errors import StackError
from iotcommon.shutdown import stop_on_signals
from iotpipe_stack import supervisor
from iotpipe_stack.ports import free_ports
from iotpipe_stack.settings import LOOPBACK, REPO_ROOT

K8S_VERSION = os.environ.get("IOTPIPE_K8S_VERSION", "1.36.3")
ETCD_VERSION = os.environ.get("IOTPIPE_ETCD_VERSION", "3.6.16")
BUILD_SCRIPT = REPO_ROOT / "stack" / "kube" / "build.sh"
ADMIN = "admin"

Progress = Callable[[str], None]


def _print(msg: str) -> None:
    print(f"[kube] {msg}", flush=True)


def cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("IOTPIPE_CACHE") or "~/.cache/iotpipe").expanduser()


@dataclass(frozen=True)
class KubeBinaries:
    apiserver: Path
    kubectl: Path
    etcd: Path

    @classmethod
    def in_cache(cls, cache: Path) -> KubeBinaries:
        b = cache / "bin"
        return cls(b / f"kube-apiserver-v{K8S_VERSION}", b / f"kubectl-v{K8S_VERSION}", b / f"etcd-v{ETCD_VERSION}")

    def missing(self) -> list[Path]:
        return [p for p in (self.apiserver, self.kubectl, self.etcd) if not os.access(p, os.X_OK)]


def ensure_binaries(cache: Path | None = None, build: bool = True, progress: Progress = _print) -> KubeBinaries:
    """The cached binaries; builds them with stack/kube/build.sh when missing (minutes, once per version)."""
    cache = cache or cache_dir()
    bins = KubeBinaries.in_cache(cache)
    if not bins.missing():
        return bins
    if not build:
        raise StackError(f"missing {', '.join(map(str, bins.missing()))}: run `make kube-tools` ({BUILD_SCRIPT})")
    progress(f"building kube-apiserver/kubectl v{K8S_VERSION} and etcd v{ETCD_VERSION} from the Go module proxy "
             f"(first time only; see {BUILD_SCRIPT})")
    env = {**os.environ, "IOTPIPE_CACHE": str(cache), "IOTPIPE_K8S_VERSION": K8S_VERSION,
           "IOTPIPE_ETCD_VERSION": ETCD_VERSION}
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, capture_output=True, text=True, check=False,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0 or bins.missing():
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-30:])
        raise StackError(f"building the Kubernetes binaries failed (exit {proc.returncode}):\n{tail}")
    return bins


def kubeconfig_text(server: str, user: str, token: str) -> str:
    """A kubeconfig (JSON is valid YAML) for one token user; TLS is the apiserver's self-signed pair, not verified."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "iotpipe-test", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": f"{user}@iotpipe-test", "context": {"cluster": "iotpipe-test", "user": user}}],
        "current-context": f"{user}@iotpipe-test",
    }
    return json.dumps(doc, indent=1)


class KubeAPIServer:
    """etcd + kube-apiserver under ``home``. ``users`` maps extra token users to their groups (admin is built in)."""

    def __init__(self, home: Path, binaries: KubeBinaries, users: Mapping[str, Sequence[str]] | None = None,
                 progress: Progress = _print, die_with_parent: bool = False, address: str = LOOPBACK,
                 service_accounts: bool = False, extra_args: Sequence[str] = ()) -> None:
        """address: where the API server listens and what it advertises (the local cluster gives a node-reachable
        one); service_accounts: keep the ServiceAccount admission plugin (needs a controller-manager); extra_args:
        more kube-apiserver flags."""
        self.home = home
        self.address = address
        self.service_accounts = service_accounts
        self.extra_args = tuple(extra_args)
        self.bins = binaries
        self.progress = progress
        self.die_with_parent = die_with_parent
        self.tokens: dict[str, str] = {ADMIN: secrets.token_hex(16)}
        self.groups: dict[str, tuple[str, ...]] = {ADMIN: ("system:masters",)}
        for user, groups in (users or {}).items():
            self.tokens[user] = secrets.token_hex(16)
            self.groups[user] = tuple(groups)
        self.port = 0
        self.etcd_files = supervisor.ProcFiles("etcd", home / "run" / "etcd.pid", home / "logs" / "etcd.log")
        self.api_files = supervisor.ProcFiles("kube-apiserver", home / "run" / "kube-apiserver.pid",
                                              home / "logs" / "kube-apiserver.log")

    @property
    def server(self) -> str:
        return f"https://{self.address}:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        """The admin (system:masters) kubeconfig."""
        return self.kubeconfig_for(ADMIN)

    def kubeconfig_for(self, user: str) -> Path:
        path = self.home / f"kubeconfig-{user}.yaml"
        if not path.exists():
            path.write_text(kubeconfig_text(self.server, user, self.tokens[user]))
            path.chmod(0o600)
        return path

    def _prepare(self) -> Path:
        pki = self.home / "pki"
        pki.mkdir(parents=True, exist_ok=True)
        (self.home / "etcd").mkdir(exist_ok=True)
        key = pki / "sa.key"
        if not key.exists():
            proc = subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], capture_output=True, text=True,
                                  check=False)
            if proc.returncode != 0:
                raise StackError(f"openssl genrsa failed: {proc.stderr.strip()}")
        lines = [f'{tok},{user},{user}-uid,"{",".join(self.groups[user])}"' for user, tok in self.tokens.items()]
        tokens = pki / "tokens.csv"
        tokens.write_text("\n".join(lines) + "\n")
        tokens.chmod(0o600)
        return pki

    def start(self, timeout: float = 180.0) -> None:
        missing = self.bins.missing()
        if missing:
            raise StackError(f"missing {', '.join(map(str, missing))}: run `make kube-tools`")
        pki = self._prepare()
        client, peer, self.port = free_ports(3)
        etcd_url = f"http://{LOOPBACK}:{client}"
        self.progress(f"starting etcd on {etcd_url}")
        supervisor.start(self.etcd_files, [
            str(self.bins.etcd), "--name=default", f"--data-dir={self.home / 'etcd'}",
            f"--listen-client-urls={etcd_url}", f"--advertise-client-urls={etcd_url}",
            f"--listen-peer-urls=http://{LOOPBACK}:{peer}", f"--initial-advertise-peer-urls=http://{LOOPBACK}:{peer}",
            f"--initial-cluster=default=http://{LOOPBACK}:{peer}", "--unsafe-no-fsync=true", "--log-level=warn",
        ], die_with_parent=self.die_with_parent)
        self.progress(f"starting kube-apiserver v{K8S_VERSION} on {self.server}")
        supervisor.start(self.api_files, [
            str(self.bins.apiserver), f"--etcd-servers={etcd_url}", f"--bind-address={self.address}",
            f"--advertise-address={self.address}", f"--secure-port={self.port}", f"--cert-dir={pki}",
            "--service-cluster-ip-range=10.0.0.0/24", "--allow-privileged=true", "--authorization-mode=RBAC",
            f"--token-auth-file={pki / 'tokens.csv'}",
            *(() if self.service_accounts else ("--disable-admission-plugins=ServiceAccount",)),
            f"--service-account-issuer=https://{self.address}:{self.port}",
            f"--service-account-key-file={pki / 'sa.key'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}", "--profiling=false",
            "--enable-priority-and-fairness=false", "--v=0", *self.extra_args,
        ], die_with_parent=self.die_with_parent)
        self._wait_ready(timeout)
        self.kubeconfig_for(ADMIN)
        self.progress(f"kube-apiserver ready; KUBECONFIG={self.kubeconfig}")

    def _wait_ready(self, timeout: float) -> None:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        req = urllib.request.Request(f"{self.server}/readyz",  # noqa: S310 - our own https URL
                                     headers={"Authorization": f"Bearer {self.tokens[ADMIN]}"})
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for files in (self.etcd_files, self.api_files):
                if supervisor.running_pid(files.pid_file) is None:
                    raise StackError(f"{files.name} exited during start-up; last log lines:\n"
                                     f"{supervisor.tail(files.log_file, 40)}")
            try:
                with urllib.request.urlopen(req, timeout=5, context=ctx) as resp:  # noqa: S310 - our own https URL
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as exc:
                last = str(exc)
            time.sleep(0.5)
        raise StackError(f"kube-apiserver not ready after {timeout:.0f} s ({last}); last log lines:\n"
                         f"{supervisor.tail(self.api_files.log_file, 40)}")

    def stop(self) -> None:
        supervisor.stop(self.api_files)
        supervisor.stop(self.etcd_files)

    def kubectl(self, *args: str, user: str = ADMIN, input_text: str | None = None, check: bool = True,
                timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """Run the cached kubectl against this server."""
        proc = subprocess.run([str(self.bins.kubectl), f"--kubeconfig={self.kubeconfig_for(user)}", *args],
                              input=input_text, capture_output=True, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise StackError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iotpipe_stack.kube", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("up", "build"), help="up: start and wait; build: only build the binaries")
    parser.add_argument("--home", help="state directory (default: a new temporary directory)")
    args = parser.parse_args(argv)
    try:
        bins = ensure_binaries()
        if args.command == "build":
            for path in (bins.apiserver, bins.kubectl, bins.etcd):
                print(path)
            return 0
        home = Path(args.home) if args.home else Path(tempfile.mkdtemp(prefix="iotpipe-kube-"))
        api = KubeAPIServer(home, bins)
        api.start()
    except StackError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"KUBECONFIG={api.kubeconfig}", flush=True)
    stop = stop_on_signals()
    try:
        stop.wait()
    finally:
        api.stop()
        _print("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
