"""Types of the pipeline-process registry (see pipeline.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from iotcommon.errors import StackError

#: seconds a pipeline process gets to stop after SIGTERM, unless it declares its own ``stop_timeout``
DEFAULT_STOP_TIMEOUT = 15.0


@dataclass(frozen=True)
class StackInfo:
    """What a pipeline process needs to know about the running local stack."""

    home: Path
    logs_dir: Path
    repo_root: Path
    bootstrap: str
    thrift_host: str
    thrift_port: int
    python: Path  # the main venv's python (sys.executable of `iotpipe`)
    flink_python: Path
    connector_jar: Path
    java_home: Path

    def base_env(self) -> dict[str, str]:
        """Env vars every pipeline process gets (the shared settings of docs/development.md)."""
        return {
            "IOTPIPE_HOME": str(self.home),
            "IOTPIPE_KAFKA_BOOTSTRAP": self.bootstrap,
            "IOTPIPE_HBASE_HOST": self.thrift_host,
            "IOTPIPE_HBASE_PORT": str(self.thrift_port),
            "IOTPIPE_FLINK_CONNECTOR_JAR": str(self.connector_jar),
            "JAVA_HOME": str(self.java_home),
        }


def _no_env(_: StackInfo) -> Mapping[str, str]:
    return {}


@dataclass(frozen=True)
class PipelineProcess:
    """One process of the pipeline started by `iotpipe run` after the stack is ready.

    name:  short id; logs go to $IOTPIPE_HOME/logs/<name>.log, pid file to $IOTPIPE_HOME/run/<name>.pid
    argv:  command line, given the stack (e.g. [str(info.python), "-m", "hbase_sync"])
    env:   extra env vars on top of os.environ + StackInfo.base_env()
    ready: optional probe polled until True (e.g. an HTTP health check); None = ready once started
    url:   optional address a person opens (e.g. the dashboard); `iotpipe run` prints it once ready
    stop_timeout: seconds between SIGTERM and SIGKILL when it is stopped (`iotpipe local down`, `make stop`,
           LocalStack.down/stop_service): long enough for its graceful shutdown. Recorded in its pid file at start,
           so whichever command stops it later uses it.
    """

    name: str
    argv: Callable[[StackInfo], list[str]]
    env: Callable[[StackInfo], Mapping[str, str]] = _no_env
    ready: Callable[[StackInfo], bool] | None = None
    stop_timeout: float = DEFAULT_STOP_TIMEOUT
    url: Callable[[StackInfo], str] | None = None

    def __post_init__(self) -> None:
        if not self.stop_timeout > 0:
            raise StackError(f"pipeline process {self.name!r}: stop_timeout must be > 0 s, not {self.stop_timeout}")
