"""Types of the pipeline-process registry (see pipeline.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path


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
    """

    name: str
    argv: Callable[[StackInfo], list[str]]
    env: Callable[[StackInfo], Mapping[str, str]] = _no_env
    ready: Callable[[StackInfo], bool] | None = None
    stop_timeout: float = field(default=15.0)
    url: Callable[[StackInfo], str] | None = None
