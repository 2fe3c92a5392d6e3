"""pytest fixtures that start the REAL services (loaded by the root conftest.py: `pytest_plugins = [...]`).

Session-scoped and lazy: a service starts the first time a test asks for it, on free loopback ports, with its data
under a temporary home, and everything is stopped at the end of the session. A service that cannot start FAILS the
test (pytest.fail with the last log lines): tests never skip.

    kafka_service    .bootstrap; .stop() / .start() restart the broker keeping its data
    hbase_service    .thrift_host, .thrift_port, .connection(); .stop_thrift() / .start_thrift()
    flink_runtime    .python (.venv-flink), .connector_jar, .connector_jar_url, .java_home, .env, .run(argv)
    unique_name      unique_name("orders") -> "orders_3f9c0a1b2d": per-test topic/table names

After the last test of a module that used kafka_service, a KafkaClientLeak warning lists every confluent-kafka client
still open in the process (iotpipe_stack.kafka_clients): one left behind lives through the later tests' broker
restarts and is destroyed at a moment nobody chose.
"""

from __future__ import annotations

import os
import re
import subprocess
import uuid
import warnings
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from iotcommon.errors import StackError
from iotpipe_stack import probes
from iotpipe_stack.install import Installed
from iotpipe_stack.kafka_clients import describe, open_clients
from iotpipe_stack.ports import free_ports
from iotpipe_stack.settings import resolve
from iotpipe_stack.stack import LocalStack

_ATTEMPTS = 3
_PORT_CLASH = ("port already in use", "Address already in use", "BindException")


def _quiet_progress(msg: str) -> None:
    print(f"[iotpipe-stack] {msg}", flush=True)


class TestStack:
    """One LocalStack per test session, in a temporary home, started piecewise on demand."""

    __test__ = False  # not a test class

    def __init__(self, home: Path, environ: Mapping[str, str]) -> None:
        kafka, controller, zk, thrift = free_ports(4)
        settings = resolve(environ, {"home": str(home)}).replace(
            kafka_port=kafka, kafka_controller_port=controller, zk_port=zk, thrift_port=thrift
        )
        self.stack = LocalStack(settings, progress=_quiet_progress, die_with_parent=True)
        self.started: set[str] = set()

    def _reassign_ports(self, names: Sequence[str]) -> None:
        kafka, controller, zk, thrift = free_ports(4)
        changes: dict[str, int] = {}
        if "kafka" in names:
            changes |= {"kafka_port": kafka, "kafka_controller_port": controller}
        if "hbase" in names:
            changes |= {"zk_port": zk}
        if "thrift" in names:
            changes |= {"thrift_port": thrift}
        self.stack.s = self.stack.s.replace(**changes)

    def ensure(self, names: Sequence[str], what: str) -> None:
        """Start `names` (idempotent); on failure pytest.fail with the reason and the last log lines."""
        last: StackError | None = None
        for _ in range(_ATTEMPTS):
            try:
                self.stack.up(names, flink=False)
                self.started.update(names)
                return
            except StackError as e:
                last = e
                if not any(h in str(e) for h in _PORT_CLASH):
                    break
                # another process grabbed a port between picking and binding: new ports, try again
                for n in names:
                    self.stack.stop_service(n)
                self._reassign_ports(names)
        pytest.fail(f"{what} could not start (home {self.stack.s.home}):\n{last}", pytrace=False)

    def close(self) -> None:
        # the data is thrown away: no need to wait for a clean HBase shutdown
        self.stack.down(timeout=5.0)


@dataclass
class KafkaService:
    _ts: TestStack

    @property
    def bootstrap(self) -> str:
        return self._ts.stack.s.bootstrap

    @property
    def log_file(self) -> Path:
        return self._ts.stack.files("kafka").log_file

    def stop(self) -> None:
        """Stop the broker (graceful, SIGTERM); its data stays for start()."""
        self._ts.stack.stop_service("kafka")

    def start(self) -> None:
        """Start the broker again on the same ports and wait until it answers."""
        self._ts.ensure(["kafka"], "Kafka")

    def is_ready(self) -> bool:
        return probes.kafka_ready(self.bootstrap)


@dataclass
class HBaseService:
    _ts: TestStack

    @property
    def thrift_host(self) -> str:
        return self._ts.stack.s.host

    @property
    def thrift_port(self) -> int:
        return self._ts.stack.s.thrift_port

    @property
    def log_file(self) -> Path:
        return self._ts.stack.files("hbase").log_file

    def connection(self, **kwargs: Any) -> Any:
        """A new happybase.Connection to the Thrift server (caller closes it)."""
        import happybase

        return happybase.Connection(self.thrift_host, self.thrift_port, **kwargs)

    def stop_thrift(self) -> None:
        """Stop only the Thrift server (HBase keeps running)."""
        self._ts.stack.stop_service("thrift")

    def start_thrift(self) -> None:
        """Start the Thrift server again on the same port and wait until `tables()` answers."""
        self._ts.ensure(["thrift"], "HBase Thrift server")

    def is_ready(self) -> bool:
        return probes.thrift_ready(self.thrift_host, self.thrift_port)


@dataclass(frozen=True)
class FlinkRuntime:
    python: Path
    connector_jar: Path
    java_home: Path
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def connector_jar_url(self) -> str:
        """For env.add_jars(...) / pipeline.jars: a file:// URL."""
        return self.connector_jar.as_uri()

    def run(self, argv: Sequence[str], timeout: float = 600, env: Mapping[str, str] | None = None,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """Run `<.venv-flink python> argv...` with the runtime env; returns the completed process (text)."""
        return subprocess.run(
            [str(self.python), *argv],
            env={**self.env, **(env or {})},
            capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd,
            stdin=subprocess.DEVNULL,
        )  # fmt: skip


@pytest.fixture(scope="session")
def iotpipe_test_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestStack]:
    home = tmp_path_factory.mktemp("iotpipe-home")
    environ = {k: v for k, v in os.environ.items() if k in ("IOTPIPE_CACHE", "IOTPIPE_FLINK_VENV")}
    ts = TestStack(home, environ)
    try:
        yield ts
    finally:
        ts.close()


@pytest.fixture(scope="session")
def kafka_service(iotpipe_test_stack: TestStack) -> KafkaService:
    iotpipe_test_stack.ensure(["kafka"], "Kafka")
    return KafkaService(iotpipe_test_stack)


@pytest.fixture(scope="session")
def hbase_service(iotpipe_test_stack: TestStack) -> HBaseService:
    iotpipe_test_stack.ensure(["hbase", "thrift"], "HBase + Thrift")
    return HBaseService(iotpipe_test_stack)


@pytest.fixture(scope="session")
def flink_runtime(iotpipe_test_stack: TestStack) -> FlinkRuntime:
    stack = iotpipe_test_stack.stack
    try:
        inst: Installed = stack.install(flink=True)
    except StackError as e:
        pytest.fail(f"the PyFlink runtime could not be installed:\n{e}", pytrace=False)
    env = {
        **os.environ,
        "JAVA_HOME": str(inst.java.home),
        "PATH": f"{inst.java.home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
        "JVM_ARGS": os.environ.get("IOTPIPE_FLINK_JVM_ARGS", "-Xmx768m -XX:+UseSerialGC"),
    }
    env.pop("PYTHONPATH", None)
    env.pop("VIRTUAL_ENV", None)
    ok, detail = probes.flink_ready(inst.flink_python, inst.connector_jar, env)
    if not ok:
        pytest.fail(f"the PyFlink runtime is not usable: {detail}", pytrace=False)
    return FlinkRuntime(python=inst.flink_python, connector_jar=inst.connector_jar, java_home=inst.java.home, env=env)


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """unique_name(prefix) -> '<prefix>_<10 hex>': a fresh Kafka topic / HBase table name for this test."""

    def make(prefix: str) -> str:
        safe = re.sub(r"[^A-Za-z0-9_]", "_", prefix)[:40] or "t"
        return f"{safe}_{uuid.uuid4().hex[:10]}"

    return make


class KafkaClientLeak(pytest.PytestWarning):
    """A test module left confluent-kafka clients open after its teardown."""


_KAFKA_MODULES: set[Path] = set()  # the test modules that used kafka_service


def pytest_runtest_setup(item: pytest.Item) -> None:
    if "kafka_service" in getattr(item, "fixturenames", ()):
        _KAFKA_MODULES.add(item.path)


@pytest.hookimpl(wrapper=True, trylast=True)  # inside the warnings plugin's wrapper: the warning lands in the summary
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """After a Kafka-using module's last test, its teardown (module fixtures included) and the release of its
    arguments: warn about every client still open. A warning, not a failure: a client a finished test left open is a
    leak, but not necessarily that test's bug (the thread of an earlier one may still hold it)."""
    result = yield
    if item.path in _KAFKA_MODULES and (nextitem is None or nextitem.path != item.path):
        clients = open_clients()
        if clients:
            warnings.warn(KafkaClientLeak(
                f"{item.path.name} left {len(clients)} Kafka client(s) open after its teardown; close each one where "
                f"it is made (`with Producer(...) as producer:`), or stop the thread that uses it:\n"
                f"{describe(clients)}"), stacklevel=1)
        del clients
    return result
