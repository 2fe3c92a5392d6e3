"""Installers: Java check, Maven jars (Kafka, HBase, the Flink Kafka connector) and the PyFlink venv.

Everything downloaded is cached under $IOTPIPE_CACHE, keyed by the content of the pom/requirements file, so a second
run needs no network. Concurrent installers (several checkouts, parallel test sessions) serialise on a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack.settings import REPO_ROOT, StackSettings

KAFKA_VERSION = "4.1.1"
HBASE_VERSION = "2.6.1"
FLINK_VERSION = "2.2.1"
MIN_JAVA = 17

#: per Maven bundle: extra copy-dependencies options
_BUNDLES: dict[str, tuple[str, ...]] = {
    "kafka": ("-DincludeScope=runtime",),
    "hbase": ("-DincludeScope=runtime",),
    "flink": ("-DexcludeTransitive=true",),
}

_NETWORK_HINTS = (
    "Could not transfer",
    "UnknownHostException",
    "Connection refused",
    "Connect timed out",
    "connect timed out",
    "Network is unreachable",
    "No route to host",
    "Read timed out",
    "No plugin found for prefix",  # with an empty local repository: the plugin could not be downloaded
)

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    return None


@dataclass(frozen=True)
class Java:
    executable: Path
    home: Path
    major: int


def parse_java_major(version_output: str) -> int | None:
    """The major version from `java -version` output ('openjdk version "17.0.15"', '"1.8.0_392"')."""
    m = re.search(r'version "(\d+)(?:\.(\d+))?', version_output)
    if not m:
        return None
    major = int(m.group(1))
    if major == 1 and m.group(2):
        return int(m.group(2))
    return major


def find_java(environ: dict[str, str] | None = None) -> Java:
    env = os.environ if environ is None else environ
    candidates: list[Path] = []
    if env.get("JAVA_HOME"):
        candidates.append(Path(env["JAVA_HOME"]) / "bin" / "java")
    which = shutil.which("java", path=env.get("PATH"))
    if which:
        candidates.append(Path(which))
    for cand in candidates:
        if not cand.exists():
            continue
        try:
            out = subprocess.run(
                [str(cand), "-version"], capture_output=True, text=True, timeout=60, check=False
            ).stderr
        except OSError:
            continue
        major = parse_java_major(out)
        if major is None:
            continue
        if major < MIN_JAVA:
            raise StackError(
                f"Java {major} found at {cand}, but Java {MIN_JAVA}+ is required (Kafka 4 needs 17). "
                "Install OpenJDK 17 (e.g. `apt-get install openjdk-17-jdk-headless`) or point JAVA_HOME at it."
            )
        real = cand.resolve()
        return Java(executable=real, home=real.parent.parent, major=major)
    raise StackError(
        f"Java not found (looked at $JAVA_HOME and PATH). Install OpenJDK {MIN_JAVA}+ "
        "(e.g. `apt-get install openjdk-17-jdk-headless`) or set JAVA_HOME."
    )


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def pom_text(bundle: str) -> str:
    return resources.files("iotpipe_stack").joinpath("maven", bundle, "pom.xml").read_text(encoding="utf-8")


def bundle_dir(cache: Path, bundle: str) -> Path:
    """Where a bundle's jars live: keyed by the pom's content, so editing a pom re-resolves."""
    key = hashlib.sha256(pom_text(bundle).encode()).hexdigest()[:12]
    return cache / "jars" / f"{bundle}-{key}"


def classify_maven_failure(output: str) -> str:
    if any(h in output for h in _NETWORK_HINTS):
        return "Maven Central is unreachable (no network, or a proxy is needed)"
    if "Could not find artifact" in output or "Could not resolve dependencies" in output:
        return "an artifact is missing from Maven Central"
    return "Maven failed"


def fetch_bundle(cache: Path, bundle: str, progress: Progress = _quiet) -> Path:
    """Ensure the jars of `bundle` ('kafka', 'hbase', 'flink') are in the cache; return the lib directory."""
    target = bundle_dir(cache, bundle)
    lib = target / "lib"
    if (target / ".complete").exists():
        return lib
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError("Maven (`mvn`) is not on PATH; it is needed once to fetch the jars from Maven Central.")
    with file_lock(cache / "jars" / f".{bundle}.lock"):
        if (target / ".complete").exists():
            return lib
        progress(f"fetching {bundle} jars from Maven Central into {target} (first run only)")
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"iotpipe-mvn-{bundle}-") as tmp:
            pom = Path(tmp) / "pom.xml"
            pom.write_text(pom_text(bundle), encoding="utf-8")
            out_dir = Path(tmp) / "lib"
            cmd = [
                mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(pom), f"-Dmaven.repo.local={cache / 'm2'}",
                "dependency:copy-dependencies", f"-DoutputDirectory={out_dir}", *_BUNDLES[bundle],
            ]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                output = proc.stdout + proc.stderr
                tail = "\n".join(output.strip().splitlines()[-15:])
                raise StackError(f"fetching {bundle} jars: {classify_maven_failure(output)}.\n{tail}")
            if target.exists():
                shutil.rmtree(target)
            target.mkdir(parents=True)
            shutil.move(str(out_dir), str(lib))
        (target / ".complete").write_text("ok\n")
        progress(f"{bundle} jars fetched in {time.monotonic() - started:.0f} s (cached in {target})")
    return lib


def connector_jar(cache: Path, progress: Progress = _quiet) -> Path:
    lib = fetch_bundle(cache, "flink", progress)
    jar = connector_jar_path(cache)
    if not jar.exists():
        raise StackError(f"no flink-sql-connector-kafka jar in {lib}")
    return jar


def connector_jar_path(cache: Path) -> Path:
    """The Flink Kafka connector jar in the cache (where it would be when it is not fetched yet)."""
    lib = bundle_dir(cache, "flink") / "lib"
    jars = sorted(lib.glob("flink-sql-connector-kafka-*.jar"))
    return jars[0] if jars else lib / "flink-sql-connector-kafka.jar"


def flink_requirements() -> Path:
    """The PyFlink venv's lock (apache-flink and its whole stack, with hashes; `make lock` writes it)."""
    return REPO_ROOT / "requirements" / "flink.lock"


def _flink_stamp() -> str:
    req = flink_requirements()
    text = req.read_text(encoding="utf-8") if req.exists() else ""
    return hashlib.sha256((text + "|" + str(REPO_ROOT)).encode()).hexdigest()[:16]


def flink_pth_text() -> str:
    """Source dirs made importable in .venv-flink (iotcommon and stream_job, no dependencies)."""
    return f"{REPO_ROOT / 'libs' / 'iotcommon'}\n{REPO_ROOT / 'services' / 'stream_job'}\n"


def flink_venv_ready(venv: Path) -> bool:
    stamp = venv / ".iotpipe-stamp"
    return (venv / "bin" / "python").exists() and stamp.exists() and stamp.read_text().strip() == _flink_stamp()


def ensure_flink_venv(venv: Path, progress: Progress = _quiet) -> Path:
    """Create/refresh .venv-flink from requirements/flink.lock (pip --require-hashes); returns its python."""
    python = venv / "bin" / "python"
    if flink_venv_ready(venv):
        return python
    lock = Path(tempfile.gettempdir()) / f"iotpipe-venv-{hashlib.sha256(str(venv).encode()).hexdigest()[:12]}.lock"
    with file_lock(lock):
        if flink_venv_ready(venv):
            return python
        req = flink_requirements()
        if not req.exists():
            raise StackError(f"{req} is missing")
        if not python.exists():
            progress(f"creating the PyFlink venv {venv}")
            base = getattr(sys, "_base_executable", sys.executable)
            _run([base, "-m", "venv", str(venv)], "creating the PyFlink venv")
        progress(f"installing PyFlink into {venv} from {req} (first run only, ~1-3 min)")
        started = time.monotonic()
        _run(
            [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "--require-hashes",
             "-r", str(req)],
            "installing PyFlink (pip)",
        )
        site = subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        Path(site, "iotpipe-flink.pth").write_text(flink_pth_text(), encoding="utf-8")
        (venv / ".iotpipe-stamp").write_text(_flink_stamp() + "\n")
        progress(f"PyFlink installed in {time.monotonic() - started:.0f} s")
    return python


def _run(cmd: list[str], what: str) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        output = proc.stdout + proc.stderr
        tail = "\n".join(output.strip().splitlines()[-15:])
        hint = " (is PyPI reachable?)" if "pip" in what and ("connection" in output.lower()) else ""
        raise StackError(f"{what} failed{hint}:\n{tail}")


@dataclass(frozen=True)
class Installed:
    java: Java
    kafka_lib: Path
    hbase_lib: Path
    connector_jar: Path
    flink_python: Path


def install_all(s: StackSettings, progress: Progress = _quiet, flink: bool = True) -> Installed:
    java = find_java()
    kafka = fetch_bundle(s.cache, "kafka", progress)
    hbase = fetch_bundle(s.cache, "hbase", progress)
    jar = connector_jar(s.cache, progress)
    py = ensure_flink_venv(s.flink_venv, progress) if flink else s.flink_python
    return Installed(java=java, kafka_lib=kafka, hbase_lib=hbase, connector_jar=jar, flink_python=py)
