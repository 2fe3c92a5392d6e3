"""Where things live and on which ports: one frozen dataclass, resolved from env vars (pure, no I/O)."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from iotcommon.errors import ConfigError

#: the checkout this package lives in (stack/iotpipe_stack/settings.py -> repo root)
REPO_ROOT = Path(__file__).resolve().parents[2]

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Setting:
    """One documented knob: dataclass field name, env var, default, help text."""

    field: str
    env: str
    default: str
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("home", "IOTPIPE_HOME", "./.iotpipe", "runtime state: data, logs, pid files"),
    Setting("cache", "IOTPIPE_CACHE", "~/.cache/iotpipe", "downloads (Maven jars) shared by every checkout"),
    Setting("flink_venv", "IOTPIPE_FLINK_VENV", "<repo>/.venv-flink", "the PyFlink virtualenv"),
    Setting("kafka_port", "IOTPIPE_KAFKA_PORT", "9092", "Kafka client (PLAINTEXT) port"),
    Setting("kafka_controller_port", "IOTPIPE_KAFKA_CONTROLLER_PORT", "9093", "Kafka KRaft controller port"),
    Setting("zk_port", "IOTPIPE_ZK_PORT", "2181", "HBase's embedded ZooKeeper port"),
    Setting("thrift_port", "IOTPIPE_HBASE_PORT", "9090", "HBase Thrift1 server port (happybase; shared setting)"),
    Setting("kafka_heap", "IOTPIPE_KAFKA_HEAP", "512m", "Kafka JVM -Xmx"),
    Setting("hbase_heap", "IOTPIPE_HBASE_HEAP", "768m", "HBase (master+RS+ZK) JVM -Xmx"),
    Setting("thrift_heap", "IOTPIPE_THRIFT_HEAP", "256m", "HBase Thrift server JVM -Xmx"),
    Setting("start_timeout", "IOTPIPE_START_TIMEOUT", "180", "seconds to wait for a component to become ready"),
    Setting("jit", "IOTPIPE_JIT", "quick", "JIT of the Kafka, HBase and Thrift JVMs: quick (C1 only: quick starts, "
            "no C2 compile storm) or full (C1 then C2: minutes of compiling, then less CPU; docs/performance.md)"),
)

JIT_MODES = ("full", "quick")

_PORT_FIELDS = ("kafka_port", "kafka_controller_port", "zk_port", "thrift_port")
_HEAP_FIELDS = ("kafka_heap", "hbase_heap", "thrift_heap")


@dataclass(frozen=True)
class StackSettings:
    home: Path
    cache: Path
    flink_venv: Path
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    zk_port: int = 2181
    thrift_port: int = 9090
    kafka_heap: str = "512m"
    hbase_heap: str = "768m"
    thrift_heap: str = "256m"
    start_timeout: float = 180.0
    jit: str = "quick"
    host: str = LOOPBACK

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def conf_dir(self) -> Path:
        return self.home / "conf"

    @property
    def flink_python(self) -> Path:
        return self.flink_venv / "bin" / "python"

    def replace(self, **changes: object) -> StackSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def to_json(self) -> str:
        """What `from_json` reads back: run/stack.json, the settings a running stack was started with."""
        return json.dumps(dataclasses.asdict(self), default=str, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> StackSettings:
        """Settings written by `to_json` (unknown keys ignored). ValueError if the text is not JSON."""
        fields = {k: v for k, v in json.loads(text).items() if k in cls.__dataclass_fields__}
        for key in ("home", "cache", "flink_venv"):
            fields[key] = Path(fields[key])
        return cls(**fields)


def _heap(value: str, name: str) -> str:
    v = value.strip().lower()
    if not v or not v[:-1].isdigit() or v[-1] not in "mg":
        raise ConfigError(f"{name}={value!r}: expected a JVM heap size like 512m or 1g")
    return v


def _port(value: str, name: str) -> int:
    try:
        port = int(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r}: expected a TCP port number") from None
    if not 1 <= port <= 65535:
        raise ConfigError(f"{name}={value!r}: port must be in 1..65535")
    return port


def resolve(
    environ: Mapping[str, str], overrides: Mapping[str, str | None] | None = None, cwd: Path | None = None
) -> StackSettings:
    """Build settings from env vars, then `overrides` (flag values; None = not given). Relative paths are
    resolved against `cwd` (default: the current directory)."""
    base = cwd or Path.cwd()
    raw: dict[str, str] = {}
    for s in SETTINGS:
        raw[s.field] = environ.get(s.env, s.default)
    for key, value in (overrides or {}).items():
        if value is not None:
            raw[key] = value

    def path(value: str) -> Path:
        if value.startswith("<repo>"):
            return REPO_ROOT / value.removeprefix("<repo>/")
        p = Path(os.path.expanduser(value))
        return (p if p.is_absolute() else base / p).resolve()

    envname = {s.field: s.env for s in SETTINGS}
    ports = {f: _port(raw[f], envname[f]) for f in _PORT_FIELDS}
    if len(set(ports.values())) != len(ports):
        raise ConfigError(f"ports must be distinct, got {ports}")
    heaps = {f: _heap(raw[f], envname[f]) for f in _HEAP_FIELDS}
    try:
        timeout = float(raw["start_timeout"])
    except ValueError:
        raise ConfigError(f"IOTPIPE_START_TIMEOUT={raw['start_timeout']!r}: expected seconds") from None
    if timeout <= 0:
        raise ConfigError("IOTPIPE_START_TIMEOUT must be > 0")
    jit = raw["jit"].strip().lower()
    if jit not in JIT_MODES:
        raise ConfigError(f"IOTPIPE_JIT={raw['jit']!r}: expected one of {', '.join(JIT_MODES)}")
    return StackSettings(
        home=path(raw["home"]),
        cache=path(raw["cache"]),
        flink_venv=path(raw["flink_venv"]),
        kafka_port=ports["kafka_port"],
        kafka_controller_port=ports["kafka_controller_port"],
        zk_port=ports["zk_port"],
        thrift_port=ports["thrift_port"],
        kafka_heap=heaps["kafka_heap"],
        hbase_heap=heaps["hbase_heap"],
        thrift_heap=heaps["thrift_heap"],
        start_timeout=timeout,
        jit=jit,
    )
