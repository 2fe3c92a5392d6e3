"""What `make images` builds, from what, under which names (pure: no I/O).

Two kinds of images:

* local **base stand-ins** (`localhost/iotpipe-base/...`): Docker Hub is not reachable here, so the official bases
  (python, eclipse-temurin, maven, node, flink) are replaced by images built from Debian bookworm packages
  (`images/base/<name>/Containerfile`), on top of a debootstrap rootfs imported as `localhost/iotpipe-base/debian`;
* the **project images** (`localhost/iotpipe/<name>:<tag>`): the repository's Dockerfiles, built from the repository
  root, with each `ARG <X>_IMAGE` base argument pointed at the matching stand-in.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BASE_PREFIX = "localhost/iotpipe-base"
PROJECT_PREFIX = "localhost/iotpipe"
#: the label carrying an image's inputs digest: an image whose label matches is not rebuilt
INPUTS_LABEL = "io.iotpipe.inputs"

DEBIAN_SUITE = "bookworm"
DEBIAN_REF = f"{BASE_PREFIX}/debian:{DEBIAN_SUITE}"
#: the debootstrap rootfs as imported; DEBIAN_REF adds the site's trust anchors (images/base/debian/Containerfile)
ROOTFS_REF = f"{BASE_PREFIX}/debian-rootfs:{DEBIAN_SUITE}"
DEBIAN_CONTAINERFILE = "images/base/debian/Containerfile"


@dataclass(frozen=True)
class BaseImage:
    """A local stand-in for an official base image."""

    name: str
    ref: str
    #: the official image it replaces (documentation and progress lines)
    replaces: str
    #: the stand-in it builds on, given to its Containerfile as build argument `parent_arg`
    parent: str
    parent_arg: str

    @property
    def containerfile(self) -> str:
        return f"images/base/{self.name}/Containerfile"


@dataclass(frozen=True)
class ProjectImage:
    """One of the repository's Dockerfiles, built from the repository root."""

    name: str
    dockerfile: str

    def ref(self, tag: str) -> str:
        return f"{PROJECT_PREFIX}/{self.name}:{tag}"


#: base stand-ins in build order (a parent comes before its children; the stream job's chain first, since it is the
#: longest build); "debian" is the imported rootfs
BASES: tuple[BaseImage, ...] = (
    BaseImage("jre", f"{BASE_PREFIX}/jre:17", "eclipse-temurin:17-jre", "debian", "DEBIAN_IMAGE"),
    BaseImage("maven", f"{BASE_PREFIX}/maven:3-jdk17", "maven:3.9-eclipse-temurin-17", "debian", "DEBIAN_IMAGE"),
    BaseImage("flink", f"{BASE_PREFIX}/flink:2.2.1", "flink:2.2.1-scala_2.12-java17", "jre", "JRE_IMAGE"),
    BaseImage("python", f"{BASE_PREFIX}/python:3.11", "python:3.11-slim-bookworm", "debian", "DEBIAN_IMAGE"),
    BaseImage("node", f"{BASE_PREFIX}/node:18", "node:20-bookworm-slim", "debian", "DEBIAN_IMAGE"),
)
BASES_BY_NAME = {b.name: b for b in BASES}

#: a Dockerfile's base-image build argument -> the stand-in that replaces its default
BASE_ARGS: dict[str, str] = {
    "PYTHON_IMAGE": "python",
    "JRE_IMAGE": "jre",
    "MAVEN_IMAGE": "maven",
    "NODE_IMAGE": "node",
    "FLINK_IMAGE": "flink",
}

#: project images, longest build first (with two builds at a time the others fit beside it)
PROJECT_IMAGES: tuple[ProjectImage, ...] = (
    ProjectImage("stream-job", "services/stream_job/Dockerfile"),
    ProjectImage("hbase", "images/hbase/Dockerfile"),
    ProjectImage("kafka", "images/kafka/Dockerfile"),
    ProjectImage("operator", "operator/Dockerfile"),
    ProjectImage("simulator", "simulators/Dockerfile"),
    ProjectImage("hbase-sync", "services/hbase_sync/Dockerfile"),
    ProjectImage("ws-bridge", "services/ws_bridge/Dockerfile"),
)
PROJECT_BY_NAME = {p.name: p for p in PROJECT_IMAGES}


def base_args(dockerfile_text: str) -> list[str]:
    """The base-image build arguments (`ARG PYTHON_IMAGE=...`) a Dockerfile declares, in file order."""
    names = re.findall(r"^\s*ARG\s+([A-Z_]+_IMAGE)\b", dockerfile_text, flags=re.MULTILINE)
    unknown = [n for n in names if n not in BASE_ARGS]
    if unknown:
        raise ValueError(f"unknown base-image argument(s) {unknown}; known: {sorted(BASE_ARGS)}")
    return list(dict.fromkeys(names))


def copy_sources(dockerfile_text: str) -> list[str]:
    """The build-context paths a Dockerfile copies (COPY/ADD sources that are neither `--from` a stage nor URLs)."""
    text = re.sub(r"\\\n", " ", dockerfile_text)
    sources: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        instr, _, rest = line.partition(" ")
        if instr.upper() not in {"COPY", "ADD"}:
            continue
        words = rest.split()
        if any(w.startswith("--from") for w in words):
            continue
        args = [w for w in words if not w.startswith("--")]
        if args and args[0].startswith("["):
            args = json.loads(rest[rest.index("[") :])
        sources += [s for s in args[:-1] if not re.match(r"https?://", s)]
    return list(dict.fromkeys(sources))


def needed_bases(dockerfile_texts: Iterable[str]) -> list[str]:
    """The stand-ins (with their parents) that these Dockerfiles need, in build order."""
    wanted: set[str] = set()
    for text in dockerfile_texts:
        for arg in base_args(text):
            name: str | None = BASE_ARGS[arg]
            while name and name != "debian":
                wanted.add(name)
                name = BASES_BY_NAME[name].parent
    return [b.name for b in BASES if b.name in wanted]


def build_graph(dockerfiles: Mapping[str, str]) -> dict[str, set[str]]:
    """Build steps and what each waits for: `base:<name>` after its parent stand-in, `image:<name>` after every
    stand-in its Dockerfile takes (dockerfiles: project image name -> Dockerfile text). The Debian root comes first
    and is not a step here."""
    graph: dict[str, set[str]] = {}
    for name in needed_bases(dockerfiles.values()):
        parent = BASES_BY_NAME[name].parent
        graph[f"base:{name}"] = set() if parent == "debian" else {f"base:{parent}"}
    for image, text in dockerfiles.items():
        graph[f"image:{image}"] = {f"base:{BASE_ARGS[arg]}" for arg in base_args(text)}
    return graph


def ready_steps(graph: Mapping[str, set[str]], done: set[str], started: set[str]) -> list[str]:
    """Steps not started yet whose dependencies are all done, in the graph's order."""
    return [step for step, deps in graph.items() if step not in started and deps <= done]


def build_args(dockerfile_text: str, base_refs: Mapping[str, str]) -> dict[str, str]:
    """`--build-arg` values: every base argument of the Dockerfile -> the stand-in's reference."""
    return {arg: base_refs[BASE_ARGS[arg]] for arg in base_args(dockerfile_text)}


def inputs_digest(parts: Iterable[tuple[str, bytes]]) -> str:
    """One digest over named inputs (file contents, base image ids, build arguments); order-independent."""
    h = hashlib.sha256()
    for name, data in sorted(parts):
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()[:32]


def ignored_by_default(rel_path: str) -> bool:
    """Files that never change what an image contains (caches, byte code, tests): left out of the inputs digest."""
    parts = rel_path.split("/")
    return any(p in {"__pycache__", "tests", "node_modules", ".mypy_cache", ".pytest_cache"} for p in parts) or (
        rel_path.endswith((".pyc", ".pyo"))
    )


def select(names: Iterable[str]) -> list[ProjectImage]:
    """The project images named (all when none), in build order; unknown names raise ValueError."""
    wanted = list(names)
    unknown = [n for n in wanted if n not in PROJECT_BY_NAME]
    if unknown:
        raise ValueError(f"unknown image(s) {unknown}; known: {', '.join(PROJECT_BY_NAME)}")
    return [p for p in PROJECT_IMAGES if not wanted or p.name in wanted]


def human_size(size: int) -> str:
    return f"{size / 1e6:.0f} MB"


def apt_mirror(sources: Iterable[str], suite: str) -> str | None:
    """The first Debian archive URI that this machine's apt sources use for ``suite`` (deb822 ``*.sources`` or
    one-line ``sources.list`` texts); None when there is none. debootstrap uses the same mirror as apt, so no
    mirror address is written into the project."""
    for text in sources:
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*)$", stanza, flags=re.MULTILINE))
            enabled = fields.get("Enabled", "yes").strip().lower() != "no"
            uris = fields.get("URIs", "").split()
            kinds, suites = fields.get("Types", "").split(), fields.get("Suites", "").split()
            if enabled and uris and "deb" in kinds and suite in suites:
                return uris[0]
        for line in text.splitlines():
            m = re.match(r"^\s*deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and m.group(2) == suite:
                return m.group(1)
    return None

