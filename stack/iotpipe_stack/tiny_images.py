"""Tiny container images made without a registry or an image builder: one layer from a few local files.

The local cluster needs three images no registry can give it here: the pause (sandbox) image, a busybox for tests,
and CoreDNS. Each is a single static binary (Debian's busybox-static, our CoreDNS build), so an image is one layer
tar, a config and a manifest in the `docker save` archive layout, which `ctr images import` loads.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class TinyImage:
    """ref: e.g. localhost/iotpipe/busybox:1; files: path in the image -> local file (mode kept, owner root);
    symlinks: path in the image -> link target."""

    ref: str
    files: Mapping[str, Path]
    symlinks: Mapping[str, str] = field(default_factory=dict)
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    user: str = ""
    env: Sequence[str] = ("PATH=/bin",)


def _info(name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = 0
    info.uid = info.gid = 0
    return info


def layer_tar(image: TinyImage) -> bytes:
    """The image's one layer: directories, files and symlinks, sorted, with fixed times (reproducible bytes)."""
    paths = [p.strip("/") for p in [*image.files, *image.symlinks]]
    dirs = sorted({"/".join(p.split("/")[:i]) for p in paths for i in range(1, p.count("/") + 1)})
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for d in dirs:
            tar.addfile(_info(d, tarfile.DIRTYPE, 0o755))
        for name in sorted(image.files):
            src = image.files[name]
            data = src.read_bytes()
            info = _info(name.strip("/"), tarfile.REGTYPE, src.stat().st_mode & 0o777)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name in sorted(image.symlinks):
            info = _info(name.strip("/"), tarfile.SYMTYPE, 0o777)
            info.linkname = image.symlinks[name]
            tar.addfile(info)
    return buf.getvalue()


def image_config(image: TinyImage, layer_digest: str) -> dict[str, object]:
    return {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Entrypoint": list(image.entrypoint) or None, "Cmd": list(image.cmd) or None,
                   "Env": list(image.env), "User": image.user, "WorkingDir": "/"},
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
        "history": [{"created_by": "iotpipe_stack.tiny_images"}],
    }


def write_archive(image: TinyImage, out: Path) -> Path:
    """Write the image as a `docker save` archive (manifest.json, config, one layer) to ``out``; returns ``out``."""
    layer = layer_tar(image)
    layer_hex = hashlib.sha256(layer).hexdigest()
    config = json.dumps(image_config(image, f"sha256:{layer_hex}"), sort_keys=True).encode()
    config_name = f"{hashlib.sha256(config).hexdigest()}.json"
    manifest = json.dumps([{"Config": config_name, "RepoTags": [image.ref],
                            "Layers": [f"{layer_hex}/layer.tar"]}]).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with tarfile.open(tmp, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((f"{layer_hex}/layer.tar", layer), (config_name, config), ("manifest.json", manifest)):
            info = _info(name, tarfile.REGTYPE, 0o644)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    tmp.replace(out)
    return out
