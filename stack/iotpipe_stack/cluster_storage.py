"""Dynamic PersistentVolumes for the local cluster: a small provisioner for the default StorageClass ``local``.

Each pending PersistentVolumeClaim of that class gets a hostPath PersistentVolume, a directory under
``<cluster home>/volumes`` pre-bound to the claim. The directory is world-writable, because pods under Pod Security
"restricted" run as arbitrary non-root users, and a hostPath volume gets no fsGroup ownership change. A released
volume is deleted with its directory (reclaim policy Delete). One node, so no node affinity is needed.

    python -m iotpipe_stack.cluster_storage --kubeconfig FILE --kubectl BIN --root DIR   # runs until SIGTERM

The cluster (iotpipe_stack.cluster) starts and stops it; the decisions are pure functions (claims_to_provision,
volume_for_claim, volumes_to_delete), and the loop around them is a thin kubectl edge.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from iotcommon.shutdown import stop_on_signals

STORAGE_CLASS = "local"
PROVISIONER = "iotpipe.dev/local-hostpath"
POLL_SECONDS = 3.0  # each pass runs kubectl once: ~0.1 CPU-second here

Obj = dict[str, Any]


def storage_class() -> Obj:
    """The cluster's default StorageClass."""
    return {
        "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": PROVISIONER, "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate",
    }


def volume_name(claim: Obj) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def claims_to_provision(claims: Sequence[Obj], volumes: Sequence[Obj]) -> list[Obj]:
    """Pending claims of our class that no volume has been made for yet."""
    made = {v["metadata"]["name"] for v in volumes}
    return [c for c in claims
            if c.get("spec", {}).get("storageClassName") == STORAGE_CLASS
            and c.get("status", {}).get("phase", "Pending") == "Pending"
            and not c["spec"].get("volumeName")
            and not c["metadata"].get("deletionTimestamp")
            and volume_name(c) not in made]


def volume_for_claim(claim: Obj, root: Path) -> Obj:
    """A hostPath PersistentVolume pre-bound to the claim (same size, access modes and volume mode)."""
    meta = claim["metadata"]
    spec = claim["spec"]
    size = spec.get("resources", {}).get("requests", {}).get("storage", "1Gi")
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": volume_name(claim), "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
        "spec": {
            "capacity": {"storage": size},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "volumeMode": spec.get("volumeMode", "Filesystem"),
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": STORAGE_CLASS,
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
            "hostPath": {"path": str(root / volume_name(claim)), "type": "DirectoryOrCreate"},
        },
    }


def volumes_to_delete(volumes: Sequence[Obj]) -> list[Obj]:
    """Our volumes whose claim is gone (phase Released) and whose policy is Delete."""
    return [v for v in volumes
            if v["metadata"].get("annotations", {}).get("pv.kubernetes.io/provisioned-by") == PROVISIONER
            and v.get("status", {}).get("phase") == "Released"
            and v["spec"].get("persistentVolumeReclaimPolicy") == "Delete"]


class Provisioner:
    """The kubectl edge: list, create, delete; one pass per poll."""

    def __init__(self, kubectl: Path, kubeconfig: Path, root: Path) -> None:
        self.base = [str(kubectl), f"--kubeconfig={kubeconfig}"]
        self.root = root

    def _kubectl(self, *args: str, input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.base, *args], input=input_text, capture_output=True, text=True, timeout=60,
                              check=False)

    def _items(self, *args: str) -> list[Obj] | None:
        proc = self._kubectl("get", *args, "-o", "json")
        if proc.returncode != 0:
            log(f"kubectl get {' '.join(args)} failed: {proc.stderr.strip()}")
            return None
        items: list[Obj] = json.loads(proc.stdout)["items"]
        return items

    def ensure_storage_class(self) -> bool:
        proc = self._kubectl("apply", "-f", "-", input_text=json.dumps(storage_class()))
        if proc.returncode != 0:
            log(f"cannot create the StorageClass: {proc.stderr.strip()}")
        return proc.returncode == 0

    def one_pass(self) -> None:
        items = self._items("persistentvolumeclaims,persistentvolumes", "--all-namespaces")  # one kubectl per pass
        if items is None:
            return
        claims = [i for i in items if i.get("kind") == "PersistentVolumeClaim"]
        volumes = [i for i in items if i.get("kind") == "PersistentVolume"]
        for claim in claims_to_provision(claims, volumes):
            pv = volume_for_claim(claim, self.root)
            path = Path(pv["spec"]["hostPath"]["path"])
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            proc = self._kubectl("create", "-f", "-", input_text=json.dumps(pv))
            where = f"{claim['metadata']['namespace']}/{claim['metadata']['name']}"
            log(f"volume {pv['metadata']['name']} for {where}: " +
                ("created" if proc.returncode == 0 else proc.stderr.strip()))
        for pv in volumes_to_delete(volumes):
            name = pv["metadata"]["name"]
            proc = self._kubectl("delete", "persistentvolume", name, "--wait=false")
            if proc.returncode == 0:
                shutil.rmtree(self.root / name, ignore_errors=True)
                log(f"volume {name} released: deleted with its directory")


def log(msg: str) -> None:
    print(f"[cluster-storage {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m iotpipe_stack.cluster_storage", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kubeconfig", required=True, type=Path)
    parser.add_argument("--kubectl", required=True, type=Path)
    parser.add_argument("--root", required=True, type=Path, help="directory that holds the volumes")
    args = parser.parse_args(argv)
    stop = stop_on_signals()
    args.root.mkdir(parents=True, exist_ok=True)
    prov = Provisioner(args.kubectl, args.kubeconfig, args.root)
    while not stop.is_set() and not prov.ensure_storage_class():
        stop.wait(POLL_SECONDS)
    log(f"StorageClass {STORAGE_CLASS} (default): volumes under {args.root}")
    while not stop.is_set():
        prov.one_pass()
        stop.wait(POLL_SECONDS)
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
