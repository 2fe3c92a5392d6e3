"""`make images`: build every image with podman from local base stand-ins, then load them into the cluster's containerd.

    python -m iotpipe_stack.images [--only operator,kafka] [--no-load] [--force] [--list]

Steps (each prints a timed progress line):
1. a Debian bookworm rootfs (debootstrap, minbase), cached as a tarball in $IOTPIPE_CACHE/images and imported with
   `podman import` as localhost/iotpipe-base/debian:bookworm;
2. the base stand-ins images/base/<name>/Containerfile (python 3.11, JRE 17, Maven + JDK 17, node, Flink 2.2.1 laid out
   from the apache-flink wheel in .venv-flink);
3. the project images (their Dockerfiles, repository root as context, `--build-arg <X>_IMAGE=<stand-in>`), tagged
   localhost/iotpipe/<name>:<tag> (tag: the charts' appVersion);
4. when a containerd socket is given (CONTAINERD_ADDRESS) and exists: `podman save` + `ctr -n k8s.io images import`.

An image whose inputs (Dockerfile, the files it copies, build arguments, base image id) did not change since it was
built is skipped: its inputs digest is stored in the image label io.iotpipe.inputs. podman runs with runc and explicit
ulimits (iotpipe_stack.podman); what the builds take from this machine: iotpipe_stack.image_inputs.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from iotcommon.config import load, setting
from iotcommon.errors import ConfigError, StackError
from iotpipe_stack import image_inputs as inputs
from iotpipe_stack import image_specs as specs
from iotpipe_stack.install import file_lock
from iotpipe_stack.podman import Podman, load_into_containerd
from iotpipe_stack.settings import REPO_ROOT


@dataclass(frozen=True)
class ImagesConfig:
    cache: str = setting("~/.cache/iotpipe", "cache dir (the Debian rootfs tarball goes to <cache>/images)",
                         env="IOTPIPE_CACHE")  # fmt: skip
    only: tuple[str, ...] = setting((), "build only these project images (comma-separated; their bases too)",
                                    env="IOTPIPE_IMAGES_ONLY")  # fmt: skip
    tag: str = setting("", "tag of the project images (empty: the charts' appVersion)", env="IOTPIPE_IMAGE_TAG")
    force: bool = setting(False, "rebuild even when the inputs did not change", env="IOTPIPE_IMAGES_FORCE")
    load: bool = setting(True, "load the images into containerd when CONTAINERD_ADDRESS is set",
                         env="IOTPIPE_IMAGES_LOAD")  # fmt: skip
    containerd_address: str = setting("", "containerd socket to load the images into (empty: do not load)",
                                      env="CONTAINERD_ADDRESS")  # fmt: skip
    containerd_namespace: str = setting("k8s.io", "containerd namespace the kubelet uses",
                                        env="CONTAINERD_NAMESPACE")  # fmt: skip
    debian_mirror: str = setting("", "Debian mirror for debootstrap (empty: the one this machine's apt sources use)",
                                 env="IOTPIPE_DEBIAN_MIRROR")  # fmt: skip
    flink_venv: str = setting("", "PyFlink venv whose apache-flink wheel gives /opt/flink (empty: <repo>/.venv-flink)",
                              env="IOTPIPE_FLINK_VENV")  # fmt: skip
    ca_dir: str = setting("/usr/local/share/ca-certificates", "extra trust anchors (*.crt) copied into the stand-ins",
                          env="IOTPIPE_IMAGES_CA_DIR")  # fmt: skip
    jobs: int = setting(2, "builds at a time (stand-ins and images whose bases are there)", env="IOTPIPE_IMAGES_JOBS",
                        minimum=1)  # fmt: skip
    list: bool = setting(False, "print the images and their references, build nothing", env="IOTPIPE_IMAGES_LIST")


_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"[images {time.strftime('%H:%M:%S')} +{time.monotonic() - _T0:6.1f}s] {msg}", flush=True)


def chart_app_version() -> str:
    text = (REPO_ROOT / "charts" / "iotpipe-operator" / "Chart.yaml").read_text(encoding="utf-8")
    m = re.search(r'^appVersion:\s*"?([^"\s]+)"?', text, flags=re.MULTILINE)
    if not m:
        raise StackError("charts/iotpipe-operator/Chart.yaml has no appVersion")
    return m.group(1)


@dataclass
class Built:
    name: str
    ref: str
    seconds: float
    size: int
    skipped: bool


class Builder:
    def __init__(self, cfg: ImagesConfig, podman: Podman) -> None:
        self.cfg = cfg
        self.podman = podman
        self.cache = Path(cfg.cache).expanduser()
        self.work = self.cache / "images"
        self.logs = self.work / "logs"
        self.tag = cfg.tag or chart_app_version()
        self.results: list[Built] = []
        self.base_refs: dict[str, str] = {"debian": specs.DEBIAN_REF, **{b.name: b.ref for b in specs.BASES}}

    def _fresh(self, ref: str, digest: str) -> bool:
        return not self.cfg.force and self.podman.label(ref, specs.INPUTS_LABEL) == digest

    def _record(self, name: str, ref: str, started: float, skipped: bool) -> None:
        secs = time.monotonic() - started
        size = self.podman.size(ref)
        self.results.append(Built(name, ref, secs, size, skipped))
        state = "unchanged, kept" if skipped else f"built in {secs:.1f}s"
        progress(f"{ref}: {state} ({specs.human_size(size)})")

    def debian(self) -> None:
        """The debootstrap rootfs (imported), then the root stand-in: rootfs + this site's trust anchors."""
        started = time.monotonic()
        tarball = inputs.debian_rootfs(self.cache, self.cfg.debian_mirror or inputs.host_apt_mirror(), progress)
        st = tarball.stat()
        digest = specs.inputs_digest([("rootfs", f"{tarball.name} {st.st_size} {st.st_mtime_ns}".encode())])
        if not self._fresh(specs.ROOTFS_REF, digest):
            progress(f"{specs.ROOTFS_REF}: podman import {tarball}")
            self.podman.import_tarball(tarball, specs.ROOTFS_REF, digest)
        started = time.monotonic()
        containerfile = REPO_ROOT / specs.DEBIAN_CONTAINERFILE
        certs = inputs.site_certificates(Path(self.cfg.ca_dir))
        own = sorted(f for f in containerfile.parent.iterdir() if f.is_file())
        parts = [("parent", (self.podman.image_id(specs.ROOTFS_REF) or "").encode()),
                 *[(f.name, f.read_bytes()) for f in own],
                 *[(f"cert:{c.name}", c.read_bytes()) for c in certs]]  # fmt: skip
        digest = specs.inputs_digest(parts)
        if self._fresh(specs.DEBIAN_REF, digest):
            self._record("debian", specs.DEBIAN_REF, started, True)
            return
        progress(f"{specs.DEBIAN_REF}: building (rootfs + {len(certs)} site CA certificate(s) from {self.cfg.ca_dir})")
        with tempfile.TemporaryDirectory(prefix="debian-context-", dir=self.work) as tmp:
            (Path(tmp) / "certs").mkdir()
            for f in own:
                shutil.copy2(f, Path(tmp) / f.name)
            for c in certs:
                shutil.copy2(c, Path(tmp) / "certs" / c.name)
            self.podman.build(specs.DEBIAN_REF, containerfile, Path(tmp), {"ROOTFS_IMAGE": specs.ROOTFS_REF}, digest,
                              self.logs / "base-debian.log")  # fmt: skip
        self._record("debian", specs.DEBIAN_REF, started, False)

    def base(self, name: str) -> None:
        base = specs.BASES_BY_NAME[name]
        started = time.monotonic()
        containerfile = REPO_ROOT / base.containerfile
        parent_id = self.podman.image_id(self.base_refs[base.parent]) or ""
        context = containerfile.parent
        parts = [("parent", parent_id.encode())]
        parts += [(f.name, f.read_bytes()) for f in sorted(context.iterdir()) if f.is_file()]
        if name == "flink":
            venv = Path(self.cfg.flink_venv).expanduser() if self.cfg.flink_venv else REPO_ROOT / ".venv-flink"
            dist = inputs.flink_distribution(venv)
            parts += [("flink-dist", inputs.flink_fingerprint(dist))]
        digest = specs.inputs_digest(parts)
        if self._fresh(base.ref, digest):
            self._record(name, base.ref, started, True)
            return
        progress(f"{base.ref}: building (stand-in for {base.replaces})")
        if name == "flink":
            context = inputs.stage_flink_context(dist, self.work)
        try:
            args = {base.parent_arg: self.base_refs[base.parent]}
            if name == "node":
                args["NPM_REGISTRY"] = inputs.npm_registry()
            self.podman.build(base.ref, containerfile, context, args, digest, self.logs / f"base-{name}.log")
        finally:
            if name == "flink":
                shutil.rmtree(context, ignore_errors=True)
        self._record(name, base.ref, started, False)

    def project(self, image: specs.ProjectImage) -> None:
        started = time.monotonic()
        ref = image.ref(self.tag)
        dockerfile = REPO_ROOT / image.dockerfile
        text = dockerfile.read_text(encoding="utf-8")
        args = specs.build_args(text, self.base_refs)
        parts = [("Dockerfile", text.encode()), ("dockerignore", (REPO_ROOT / ".dockerignore").read_bytes())]
        parts += [(f"arg:{k}", f"{v}@{self.podman.image_id(v) or ''}".encode()) for k, v in args.items()]
        copied = inputs.context_files(specs.copy_sources(text))
        parts += [(str(f.relative_to(REPO_ROOT)), f.read_bytes()) for f in copied]
        digest = specs.inputs_digest(parts)
        if self._fresh(ref, digest):
            self._record(image.name, ref, started, True)
            return
        progress(f"{ref}: building {image.dockerfile}")
        self.podman.build(ref, dockerfile, REPO_ROOT, args, digest, self.logs / f"{image.name}.log")
        self._record(image.name, ref, started, False)

    def run(self, images: Sequence[specs.ProjectImage]) -> None:
        """The Debian root, then every stand-in and image as soon as what it builds on is there, `jobs` at a time."""
        graph = specs.build_graph({p.name: (REPO_ROOT / p.dockerfile).read_text(encoding="utf-8") for p in images})
        with file_lock(self.work / ".build.lock"):  # one build at a time per cache (make test + a fixture, two shells)
            self._run_graph(graph)

    def _run_graph(self, graph: dict[str, set[str]]) -> None:
        self.debian()
        done: set[str] = set()
        started: set[str] = set()
        with ThreadPoolExecutor(max_workers=self.cfg.jobs, thread_name_prefix="build") as pool:
            running: dict[Future[None], str] = {}
            while len(done) < len(graph):
                for step in specs.ready_steps(graph, done, started)[: self.cfg.jobs - len(running)]:
                    started.add(step)
                    running[pool.submit(self._step, step)] = step
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    step = running.pop(future)
                    future.result()  # a failed build raises here; the pool waits for the running ones
                    done.add(step)

    def _step(self, step: str) -> None:
        kind, name = step.split(":", 1)
        if kind == "base":
            self.base(name)
        else:
            self.project(specs.PROJECT_BY_NAME[name])


def ensure_images(names: Sequence[str] = (), containerd_address: str | Path | None = None,
                  namespace: str = "k8s.io", environ: Mapping[str, str] | None = None) -> dict[str, str]:  # fmt: skip
    """Build the named project images (all when none; unchanged ones are kept) and, when a containerd socket is
    given, load them into it. Returns image name -> reference (localhost/iotpipe/<name>:<tag>). For test fixtures:
    `make test` builds the images before pytest, so this is normally a cache check plus the load."""
    env = dict(os.environ if environ is None else environ)
    cfg = load(ImagesConfig, [], env)
    cfg = dataclasses.replace(cfg, only=tuple(names), list=False)
    images = specs.select(cfg.only)
    podman = Podman()
    builder = Builder(cfg, podman)
    builder.run(images)
    refs = {p.name: p.ref(builder.tag) for p in images}
    if containerd_address:
        load_into_containerd(podman, list(refs.values()), str(containerd_address), namespace, builder.work,
                             progress)
    return refs


def summary(results: Sequence[Built]) -> str:
    lines = [f"  {r.ref:<48} {specs.human_size(r.size):>8}  {'kept' if r.skipped else f'{r.seconds:6.1f}s'}"
             for r in results]  # fmt: skip
    total = sum(r.seconds for r in results)
    return "\n".join([*lines, f"  sum of the steps {total:.1f}s (wall clock: the +seconds of this line)"])


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    env = dict(os.environ if environ is None else environ)
    try:
        cfg = load(ImagesConfig, sys.argv[1:] if argv is None else argv, env,
                   prog="python -m iotpipe_stack.images", description=__doc__)  # fmt: skip
        images = specs.select(cfg.only)
    except (ConfigError, ValueError) as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 2
    if cfg.list:
        tag = cfg.tag or chart_app_version()
        for b in specs.BASES:
            print(f"{b.ref}\tbase\tstand-in for {b.replaces}\t{b.containerfile}")
        for p in images:
            print(f"{p.ref(tag)}\timage\t{p.dockerfile}")
        return 0

    def _stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        podman = Podman()
        builder = Builder(cfg, podman)
        progress(f"building {len(images)} image(s) with podman + runc: {', '.join(p.name for p in images)}")
        builder.run(images)
        progress("done:\n" + summary(builder.results))
        refs = [p.ref(builder.tag) for p in images]
        if cfg.load and cfg.containerd_address:
            if not Path(cfg.containerd_address).exists():
                raise StackError(f"CONTAINERD_ADDRESS {cfg.containerd_address} does not exist (is the cluster up?)")
            load_into_containerd(podman, refs, cfg.containerd_address, cfg.containerd_namespace, builder.work,
                                 progress)
        else:
            progress("not loading into containerd (CONTAINERD_ADDRESS not set); the images stay in podman")
    except StackError as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("images: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
