"""The job's Java functions (``services/stream_job/java``): where their jar is, and building it with ``javac``.

They parse canonical readings in the JVM in one pass (``stream_job.sql`` passes them the grammar). The jar is built on
first use into ``$IOTPIPE_CACHE/jars/`` under a name carrying the sources' hash, so an edit rebuilds it and a warm run
costs nothing; the image builds it at ``docker build`` time into ``$FLINK_HOME/lib``. No Maven: ``javac`` against the
Flink jars that PyFlink ships is enough.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

from iotcommon.errors import ConfigError
from stream_job.config import cache_dir, configured_jar, in_flink_lib

SOURCES = Path(__file__).resolve().parent.parent / "java"
JAR_NAME = "iotpipe-stream-udf.jar"  # the name in $FLINK_HOME/lib (the image)
FUNCTIONS = {"reading_time": "dev.iotpipe.flink.ReadingTime", "reading_field": "dev.iotpipe.flink.ReadingField"}


def _sources() -> list[Path]:
    return sorted(SOURCES.rglob("*.java"))


def sources_hash() -> str:
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.relative_to(SOURCES).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _javac(environ: Mapping[str, str]) -> str:
    java_home = environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "javac").is_file():
        return str(Path(java_home) / "bin" / "javac")
    found = shutil.which("javac", path=environ.get("PATH"))
    if found is None:
        raise ConfigError("javac not found (a JDK 17 is needed to build the job's Java functions): set JAVA_HOME, "
                          "or IOTPIPE_FLINK_UDF_JAR to a built jar")
    return found


def flink_lib() -> Path:
    """The Flink jars PyFlink ships (compile classpath). Imports pyflink: only in the PyFlink venv."""
    import pyflink

    return Path(pyflink.__file__).resolve().parent / "lib"


def build(target: Path, classpath: Path, javac: str) -> Path:
    """Compile the sources against the jars in `classpath` and write the jar to `target` (atomically)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="iotpipe-udf-") as tmp:
        classes = Path(tmp) / "classes"
        proc = subprocess.run([javac, "--release", "17", "-nowarn", "-d", str(classes), "-cp",
                               str(classpath / "*"), *map(str, _sources())],
                              capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise ConfigError(f"compiling the job's Java functions failed:\n{proc.stdout}{proc.stderr}")
        # a partial file of our own beside the target: jobs starting together may build at the same time
        fd, partial = tempfile.mkstemp(prefix=target.name + ".", suffix=".partial", dir=target.parent)
        os.close(fd)
        try:
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as jar:
                jar.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\nCreated-By: iotpipe stream_job\n\n")
                for path in sorted(classes.rglob("*.class")):
                    jar.write(path, path.relative_to(classes).as_posix())
            os.replace(partial, target)
        finally:
            Path(partial).unlink(missing_ok=True)
    return target


def find_udf_jar(configured: str, environ: Mapping[str, str]) -> Path | None:
    """The jar to add to the job; None when it is already on Flink's classpath ($FLINK_HOME/lib, the image)."""
    explicit = configured_jar(configured, "IOTPIPE_FLINK_UDF_JAR")
    if explicit is not None:
        return explicit
    if in_flink_lib(JAR_NAME, environ):
        return None
    target = cache_dir(environ) / "jars" / f"iotpipe-stream-udf-{sources_hash()}.jar"
    if target.is_file():
        return target
    print(f"stream_job: compiling the job's Java functions into {target} (first run only)", file=sys.stderr)
    return build(target, flink_lib(), _javac(environ))
