"""Readiness probes: ask the service itself (never parse logs)."""

from __future__ import annotations

import contextlib
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack.ports import is_listening
from iotpipe_stack.settings import StackSettings


def service_ready(s: StackSettings, name: str) -> bool:
    """The probe of one JVM service of the local stack: Kafka's metadata, HBase's ZooKeeper port, Thrift's tables()."""
    if name == "kafka":
        return kafka_ready(s.bootstrap)
    if name == "hbase":
        return is_listening(s.zk_port, s.host)
    if name == "thrift":
        return thrift_ready(s.host, s.thrift_port)
    raise StackError(f"unknown component {name!r}")


def kafka_ready(bootstrap: str, timeout: float = 3.0) -> bool:
    """True when the broker answers a metadata request (AdminClient.list_topics) listing itself."""
    host, _, port = bootstrap.rpartition(":")
    if not is_listening(int(port), host):
        return False
    from confluent_kafka.admin import AdminClient

    try:
        with AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout * 1000)}) as admin:
            md = admin.list_topics(timeout=timeout)
    except Exception:  # KafkaException while the broker is still starting
        return False
    return len(md.brokers) >= 1


def thrift_ready(host: str, port: int, timeout: float = 5.0) -> bool:
    """True when the Thrift1 server answers `tables()` (which needs an initialised HBase master)."""
    if not is_listening(port, host):
        return False
    import happybase

    conn = None
    try:
        conn = happybase.Connection(host, port, timeout=int(timeout * 1000), autoconnect=True)
        conn.tables()
        return True
    except Exception:  # TTransportException / IOError while the master initialises
        return False
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def http_ready(url: str, timeout: float = 2.0) -> bool:
    """GET ``url`` answers 200: the sync worker's /readyz, the bridge's /healthz or /readyz."""
    if not url.startswith(("http://", "https://")):
        msg = f"not an http(s) URL: {url!r}"
        raise ValueError(msg)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def flink_ready(python: Path, connector_jar: Path, env: dict[str, str] | None = None) -> tuple[bool, str]:
    """The PyFlink runtime is usable: its venv imports pyflink + iotcommon, the connector jar exists."""
    if not python.exists():
        return False, f"{python} missing (run `iotpipe local install`)"
    if not connector_jar.exists():
        return False, f"{connector_jar} missing (run `iotpipe local install`)"
    proc = subprocess.run(
        [str(python), "-c", "import pyflink.version as v, iotcommon; print(v.__version__)"],
        capture_output=True, text=True, timeout=120, check=False, env=env,
    )  # fmt: skip
    if proc.returncode != 0:
        return False, (proc.stderr.strip().splitlines() or ["import failed"])[-1]
    return True, f"pyflink {proc.stdout.strip()}"
