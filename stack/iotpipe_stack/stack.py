"""The local stack: Kafka (KRaft), HBase standalone + Thrift1, and the PyFlink runtime, under one home directory.

Layout of $IOTPIPE_HOME: conf/<component>/ (rendered configs), data/<component>/, logs/<name>.log, run/<name>.pid,
run/stack.json (the settings the running stack was started with, so `status`/`down` find it again).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack import install as installer
from iotpipe_stack import probes, render, supervisor
from iotpipe_stack.pipeline_types import PipelineProcess, StackInfo
from iotpipe_stack.ports import check_ports_free, is_listening, is_port_free
from iotpipe_stack.settings import REPO_ROOT, StackSettings

#: JVM components, in start order
SERVICES: tuple[str, ...] = ("kafka", "hbase", "thrift")
STOP_TIMEOUT = {"kafka": 30.0, "hbase": 45.0, "thrift": 10.0}
LOG_TAIL = 25
PORT_RELEASE_S = 60.0  # longest wait for a killed service's ports to be free again
# what `down --wipe` deletes under the home: service data, rendered configs, and the stream job's default checkpoint
# directory (stream_job.config.checkpoint_path), which would otherwise restore stale state against wiped Kafka/HBase
WIPED_DIRS: tuple[str, ...] = ("data", "conf", "stream_job/checkpoints")

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"iotpipe: {msg}", file=sys.stderr, flush=True)


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what StorageTool random-uuid prints).

    Like Kafka's own generator, never one that starts with '-': ``kafka-storage format -t -abc...`` reads it as an
    option and fails (about one start in 64 otherwise)."""
    while True:
        cid = base64.urlsafe_b64encode(random_bytes()).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    state: str  # ready | not ready | stopped | missing
    pid: int | None
    where: str
    rss_bytes: int
    detail: str = ""

    @property
    def ready(self) -> bool:
        return self.state == "ready"


class LocalStack:
    def __init__(self, settings: StackSettings, progress: Progress = _stderr, die_with_parent: bool = False) -> None:
        self.s = settings
        self.progress = progress
        self.die_with_parent = die_with_parent
        self._installed: installer.Installed | None = None

    # ---------------------------------------------------------------- files
    def files(self, name: str) -> supervisor.ProcFiles:
        return supervisor.ProcFiles(name, self.s.run_dir / f"{name}.pid", self.s.logs_dir / f"{name}.log")

    @property
    def state_file(self) -> Path:
        return self.s.run_dir / "stack.json"

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        with installer.file_lock(self.s.run_dir / ".lock"):
            yield

    @classmethod
    def attach(cls, settings: StackSettings, progress: Progress = _stderr) -> LocalStack:
        """A stack for `settings.home`; if something already runs there, use the ports it was started with."""
        stack = cls(settings, progress)
        saved = stack.saved_settings()
        if saved is not None and stack.any_running():
            stack.s = saved
        return stack

    def saved_settings(self) -> StackSettings | None:
        try:
            raw = json.loads(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None
        fields = {k: v for k, v in raw.items() if k in StackSettings.__dataclass_fields__}
        for key in ("home", "cache", "flink_venv"):
            fields[key] = Path(fields[key])
        return StackSettings(**fields)

    def _save_settings(self) -> None:
        self.s.run_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(asdict(self.s), default=str, indent=2) + "\n")

    def running_pid(self, name: str) -> int | None:
        return supervisor.running_pid(self.files(name).pid_file)

    def any_running(self) -> bool:
        return any(self.running_pid(n) for n in self.process_names())

    def process_names(self) -> list[str]:
        """Every process with a pid file in run/ (services first, then pipeline processes)."""
        names = [n for n in SERVICES]
        if self.s.run_dir.exists():
            names += sorted(p.stem for p in self.s.run_dir.glob("*.pid") if p.stem not in SERVICES)
        return names

    # ---------------------------------------------------------------- install
    def install(self, flink: bool = True) -> installer.Installed:
        if self._installed is None or (flink and not installer.flink_venv_ready(self.s.flink_venv)):
            self._installed = installer.install_all(self.s, self.progress, flink=flink)
        return self._installed

    # ---------------------------------------------------------------- command lines
    def _jvm(self, inst: installer.Installed, name: str, heap: str, log4j: Path) -> list[str]:
        return [
            str(inst.java.executable),
            f"-Xmx{heap}",
            *render.COMMON_JVM_FLAGS,
            f"-Dlog4j2.configurationFile={log4j.as_uri()}",
            f"-Diotpipe.home={self.s.home}",
            f"-Diotpipe.component={name}",
        ]

    def kafka_argv(self, inst: installer.Installed) -> list[str]:
        conf = self.s.conf_dir / "kafka"
        return [
            *self._jvm(inst, "kafka", self.s.kafka_heap, conf / "log4j2.properties"),
            f"-Dkafka.logs.dir={self.s.logs_dir}",
            "-cp", f"{inst.kafka_lib}/*",
            "kafka.Kafka", str(conf / "server.properties"),
        ]  # fmt: skip

    def hbase_argv(self, inst: installer.Installed) -> list[str]:
        conf = self.s.conf_dir / "hbase"
        return [
            *self._jvm(inst, "hbase", self.s.hbase_heap, conf / "log4j2.properties"),
            *render.HBASE_JDK17_FLAGS,
            f"-Dhbase.log.dir={self.s.logs_dir}",
            "-cp", f"{conf}:{inst.hbase_lib}/*",
            "org.apache.hadoop.hbase.master.HMaster", "start",
        ]  # fmt: skip

    def thrift_argv(self, inst: installer.Installed) -> list[str]:
        conf = self.s.conf_dir / "hbase"
        return [
            *self._jvm(inst, "thrift", self.s.thrift_heap, conf / "log4j2.properties"),
            *render.HBASE_JDK17_FLAGS,
            f"-Dhbase.log.dir={self.s.logs_dir}",
            "-cp", f"{conf}:{inst.hbase_lib}/*",
            "org.apache.hadoop.hbase.thrift.ThriftServer",
            "-b", self.s.host, "-p", str(self.s.thrift_port), "-threadpool", "start",
        ]  # fmt: skip

    # ---------------------------------------------------------------- prepare
    def _write(self, path: Path, text: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    def prepare_kafka(self, inst: installer.Installed) -> None:
        conf = self.s.conf_dir / "kafka"
        data = self.s.data_dir / "kafka"
        self._write(conf / "server.properties", render.kafka_server_properties(self.s, data))
        self._write(conf / "log4j2.properties", render.KAFKA_LOG4J2)
        if (data / "meta.properties").exists():
            return
        data.mkdir(parents=True, exist_ok=True)
        self.progress("formatting Kafka storage (KRaft)")
        import subprocess

        cmd = [
            *self._jvm(inst, "kafka-format", "256m", conf / "log4j2.properties"),
            "-cp", f"{inst.kafka_lib}/*", "kafka.tools.StorageTool", "format",
            "-t", new_cluster_id(), "-c", str(conf / "server.properties"), "--ignore-formatted",
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{(proc.stdout + proc.stderr).strip()[-3000:]}")

    def prepare_hbase(self) -> None:
        conf = self.s.conf_dir / "hbase"
        data = self.s.data_dir / "hbase"
        data.mkdir(parents=True, exist_ok=True)
        self._write(conf / "hbase-site.xml", render.hbase_site_xml(self.s, data))
        self._write(conf / "log4j2.properties", render.HBASE_LOG4J2)

    # ---------------------------------------------------------------- start / stop
    def _ports(self, name: str) -> list[tuple[str, int]]:
        return {
            "kafka": [("Kafka", self.s.kafka_port), ("Kafka controller", self.s.kafka_controller_port)],
            "hbase": [("HBase ZooKeeper", self.s.zk_port)],
            "thrift": [("HBase Thrift", self.s.thrift_port)],
        }[name]

    def start_service(self, name: str) -> bool:
        """Start one JVM service unless it already runs. True if it was started now."""
        if self.running_pid(name) is not None:
            return False
        check_ports_free(self._ports(name), self.s.host)
        inst = self.install(flink=False)
        if name == "kafka":
            self.prepare_kafka(inst)
            argv = self.kafka_argv(inst)
        elif name == "hbase":
            self.prepare_hbase()
            argv = self.hbase_argv(inst)
        elif name == "thrift":
            self.prepare_hbase()
            argv = self.thrift_argv(inst)
        else:
            raise StackError(f"unknown component {name!r}")
        env = {**_base_environ(), "JAVA_HOME": str(inst.java.home)}
        pid = supervisor.start(self.files(name), argv, env=env, cwd=self.s.home, die_with_parent=self.die_with_parent)
        self.progress(f"started {name} (pid {pid}), log {self.files(name).log_file}")
        return True

    def probe(self, name: str) -> bool:
        if name == "kafka":
            return probes.kafka_ready(self.s.bootstrap)
        if name == "hbase":
            return is_listening(self.s.zk_port, self.s.host)
        if name == "thrift":
            return probes.thrift_ready(self.s.host, self.s.thrift_port)
        raise StackError(f"unknown component {name!r}")

    def died_error(self, name: str, what: str = "died") -> StackError:
        log = self.files(name).log_file
        return StackError(f"{name} {what}. Last lines of {log}:\n{supervisor.tail(log, LOG_TAIL)}")

    def wait_ready(self, names: Iterable[str], timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.s.start_timeout)
        pending = list(names)
        t0 = time.monotonic()
        while pending:
            for name in list(pending):
                if self.running_pid(name) is None:
                    raise self.died_error(name, "died while starting")
                if self.probe(name):
                    pending.remove(name)
                    self.progress(f"{name} ready after {time.monotonic() - t0:.1f}s ({self.where(name)})")
            if pending:
                if time.monotonic() > deadline:
                    raise self.died_error(pending[0], f"not ready after {timeout or self.s.start_timeout:.0f}s")
                time.sleep(0.5)

    def stop_service(self, name: str, timeout: float | None = None) -> bool:
        stopped = supervisor.stop(self.files(name), timeout or STOP_TIMEOUT.get(name, 15.0))
        if stopped:
            self.progress(f"stopped {name}")
        return stopped

    def kill(self, name: str) -> bool:
        """kill -9 one process of this home (a service or a pipeline process) with its whole process group, as a
        crash would: no clean shutdown. True if it was running. Start it again with `restart_service` (services) or
        `start_pipeline` (pipeline processes); data directories and checkpoints stay."""
        killed = supervisor.kill(self.files(name))
        if killed:
            self.progress(f"killed {name} (SIGKILL)")
        return killed

    def restart_service(self, name: str, timeout: float | None = None) -> None:
        """Start one service again on its data directory and ports, and wait until it is ready. After a kill the
        kernel may hold the ports for a moment (connections of the dead process closing): wait for them first."""
        deadline = time.monotonic() + PORT_RELEASE_S
        while time.monotonic() < deadline and not all(is_port_free(p, self.s.host) for _, p in self._ports(name)):
            time.sleep(0.2)
        self.start_service(name)
        self.wait_ready([name], timeout)

    def up(self, names: Iterable[str] = SERVICES, flink: bool = True) -> None:
        """Install what is missing, start what is not running, wait until everything is ready. Idempotent."""
        wanted = [n for n in SERVICES if n in set(names)]
        self.s.home.mkdir(parents=True, exist_ok=True)
        with self.locked():
            self.install(flink=flink)
            if not self.any_running():
                self._save_settings()
            idle = [n for n in wanted if self.running_pid(n) is None]
            check_ports_free([p for n in idle for p in self._ports(n)], self.s.host)  # all at once, before starting
            started: list[str] = []
            try:
                for name in wanted:
                    if self.start_service(name):
                        started.append(name)
                self.wait_ready(wanted)
            except BaseException:
                for name in reversed(started):
                    self.stop_service(name)
                raise
            if flink:
                ok, detail = self.flink_status()
                if not ok:
                    raise StackError(f"Flink runtime not usable: {detail}")
                self.progress(f"flink runtime ready ({detail})")

    def down(self, wipe: bool = False, timeout: float | None = None) -> list[str]:
        """Stop every process of this home (pipeline processes first). Returns the names stopped.

        timeout: seconds per process before SIGKILL (default: per component, long enough for a clean shutdown)."""
        if not self.s.run_dir.exists():
            if wipe:
                self._wipe()
            return []
        with self.locked():
            pipeline = [n for n in self.process_names() if n not in SERVICES]
            stopped = [n for n in pipeline if self.stop_service(n, timeout)]
            with concurrent.futures.ThreadPoolExecutor(max_workers=len(SERVICES)) as pool:
                results = list(pool.map(lambda n: self.stop_service(n, timeout), ["thrift", "hbase", "kafka"]))
            stopped += [n for n, ok in zip(["thrift", "hbase", "kafka"], results, strict=True) if ok]
            if wipe:
                self._wipe()
            return stopped

    def _wipe(self) -> None:
        """Delete the data, configs and the stream job's checkpoints (a restored checkpoint would carry stale state
        into wiped Kafka and HBase); logs stay."""
        import shutil

        for sub in WIPED_DIRS:
            shutil.rmtree(self.s.home / sub, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        self.progress(f"wiped data and stream job checkpoints under {self.s.home}")

    # ---------------------------------------------------------------- status
    def where(self, name: str) -> str:
        h = self.s.host
        return {
            "kafka": f"{h}:{self.s.kafka_port} (controller {h}:{self.s.kafka_controller_port})",
            "hbase": f"zookeeper {h}:{self.s.zk_port}, data {self.s.data_dir / 'hbase'}",
            "thrift": f"{h}:{self.s.thrift_port}",
        }.get(name, "")

    def connector_jar_path(self) -> Path:
        lib = installer.bundle_dir(self.s.cache, "flink") / "lib"
        jars = sorted(lib.glob("flink-sql-connector-kafka-*.jar"))
        return jars[0] if jars else lib / "flink-sql-connector-kafka.jar"

    def flink_status(self) -> tuple[bool, str]:
        return probes.flink_ready(self.s.flink_python, self.connector_jar_path())

    def status(self, flink: bool = True) -> list[ComponentStatus]:
        out: list[ComponentStatus] = []
        for name in self.process_names():
            pid = self.running_pid(name)
            rss = supervisor.rss_bytes(pid) if pid else 0
            if pid is None:
                state = "stopped"
            elif name in SERVICES:
                state = "ready" if self.probe(name) else "not ready"
            else:
                state = "running"
            out.append(ComponentStatus(name, state, pid, self.where(name), rss))
        if flink:
            ok, detail = self.flink_status()
            out.append(
                ComponentStatus(
                    "flink", "ready" if ok else "missing", None,
                    f"python {self.s.flink_python}, connector {self.connector_jar_path().name}", 0, detail,
                )
            )  # fmt: skip
        return out

    # ---------------------------------------------------------------- pipeline
    def info(self) -> StackInfo:
        inst = self.install(flink=False)
        return StackInfo(
            home=self.s.home,
            logs_dir=self.s.logs_dir,
            repo_root=REPO_ROOT,
            bootstrap=self.s.bootstrap,
            thrift_host=self.s.host,
            thrift_port=self.s.thrift_port,
            python=Path(sys.executable),
            flink_python=self.s.flink_python,
            connector_jar=inst.connector_jar,
            java_home=inst.java.home,
        )

    def start_pipeline(self, processes: Iterable[PipelineProcess], timeout: float | None = None) -> list[str]:
        info = self.info()
        names: list[str] = []
        for proc in processes:
            if proc.name in SERVICES or proc.name == "flink":
                raise StackError(f"pipeline process name {proc.name!r} clashes with a stack component")
            names.append(proc.name)
            if self.running_pid(proc.name) is not None:
                continue
            env = {**_base_environ(), **info.base_env(), **proc.env(info)}
            pid = supervisor.start(self.files(proc.name), proc.argv(info), env=env, cwd=REPO_ROOT,
                                   die_with_parent=self.die_with_parent)
            self.progress(f"started {proc.name} (pid {pid}), log {self.files(proc.name).log_file}")
            deadline = time.monotonic() + (timeout or self.s.start_timeout)
            while proc.ready is not None and not proc.ready(info):
                if self.running_pid(proc.name) is None:
                    raise self.died_error(proc.name, "died while starting")
                if time.monotonic() > deadline:
                    raise self.died_error(proc.name, "not ready in time")
                time.sleep(0.5)
        return names

    def dead(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.running_pid(n) is None]


def _base_environ() -> dict[str, str]:
    import os

    return dict(os.environ)


def format_status(rows: Iterable[ComponentStatus]) -> str:
    lines = [f"{'component':<12} {'state':<10} {'pid':>7} {'rss':>9}  where"]
    for r in rows:
        rss = f"{r.rss_bytes / 2**20:.0f} MiB" if r.rss_bytes else "-"
        pid = str(r.pid) if r.pid else "-"
        detail = f"  [{r.detail}]" if r.detail else ""
        lines.append(f"{r.name:<12} {r.state:<10} {pid:>7} {rss:>9}  {r.where}{detail}")
    return "\n".join(lines)


def status_json(rows: Iterable[ComponentStatus]) -> list[Mapping[str, object]]:
    return [asdict(r) | {"ready": r.ready} for r in rows]
