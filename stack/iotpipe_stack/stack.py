"""The local stack: Kafka (KRaft), HBase standalone + Thrift1, and the PyFlink runtime, under one home directory:
installs, starts, probes, stops and kills the processes (what each service runs: `commands`, pure; how each is probed:
`probes.service_ready`; the saved settings: `StackSettings.to_json`).

Layout of $IOTPIPE_HOME: conf/<component>/ (rendered configs), data/<component>/, logs/<name>.log, run/<name>.pid,
run/stack.json (the settings the running stack was started with, so `status`/`down` find it again).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack import commands, probes, supervisor
from iotpipe_stack import install as installer
from iotpipe_stack.commands import SERVICES as SERVICES  # re-exported: LocalStack's users import it from here
from iotpipe_stack.commands import new_cluster_id as new_cluster_id
from iotpipe_stack.pipeline_types import DEFAULT_STOP_TIMEOUT, PipelineProcess, StackInfo
from iotpipe_stack.ports import check_ports_free, is_port_free
from iotpipe_stack.settings import REPO_ROOT, StackSettings
from iotpipe_stack.status_rows import ComponentStatus as ComponentStatus  # re-exported

# seconds each service gets to stop after SIGTERM; a pipeline process's is its PipelineProcess.stop_timeout
STOP_TIMEOUT = {"kafka": 30.0, "hbase": 45.0, "thrift": 10.0}
LOG_TAIL = 25
PORT_RELEASE_S = 60.0  # longest wait for a killed service's ports to be free again
# what `down --wipe` deletes under the home: service data, rendered configs, and the stream job's default checkpoint
# directory (stream_job.config.checkpoint_path), which would otherwise restore stale state against wiped Kafka/HBase
WIPED_DIRS: tuple[str, ...] = ("data", "conf", "stream_job/checkpoints")

Progress = Callable[[str], None]


def _stderr(msg: str) -> None:
    print(f"iotpipe: {msg}", file=sys.stderr, flush=True)


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
            return StackSettings.from_json(self.state_file.read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _save_settings(self) -> None:
        self.s.run_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(self.s.to_json())

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

    # ---------------------------------------------------------------- prepare
    def binaries(self) -> commands.Binaries:
        inst = self.install(flink=False)
        return commands.Binaries(inst.java.executable, inst.kafka_lib, inst.hbase_lib)

    def prepare(self, name: str) -> None:
        """Write the service's config files and create its data directory; format Kafka's storage the first time."""
        for path, text in commands.config_files(self.s, name).items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        data = commands.data_dir(self.s, name)
        data.mkdir(parents=True, exist_ok=True)
        if name != "kafka" or (data / "meta.properties").exists():
            return
        self.progress("formatting Kafka storage (KRaft)")
        cmd = commands.kafka_format_argv(self.s, self.binaries(), new_cluster_id())
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise StackError(f"formatting Kafka storage failed:\n{(proc.stdout + proc.stderr).strip()[-3000:]}")

    # ---------------------------------------------------------------- start / stop
    def start_service(self, name: str) -> bool:
        """Start one JVM service unless it already runs. True if it was started now."""
        if self.running_pid(name) is not None:
            return False
        check_ports_free(commands.ports(self.s, name), self.s.host)
        argv = commands.argv(self.s, self.binaries(), name)
        self.prepare(name)
        env = {**os.environ, "JAVA_HOME": str(self.install(flink=False).java.home)}
        pid = supervisor.start(self.files(name), argv, env=env, cwd=self.s.home, die_with_parent=self.die_with_parent)
        self.progress(f"started {name} (pid {pid}), log {self.files(name).log_file}")
        return True

    def probe(self, name: str) -> bool:
        return probes.service_ready(self.s, name)

    def died_error(self, name: str, what: str = "died") -> StackError:
        log = self.files(name).log_file
        return StackError(f"{name} {what}. Last lines of {log}:\n{supervisor.tail(log, LOG_TAIL)}")

    def wait_ready(self, names: Iterable[str], timeout: float | None = None,
                   probe: Callable[[str], bool] | None = None) -> None:
        """Poll each process's probe (default: the service's) until all are ready; StackError with the log's tail
        if one dies or the timeout passes."""
        limit = timeout or self.s.start_timeout
        deadline = time.monotonic() + limit
        pending = list(names)
        t0 = time.monotonic()
        while pending:
            for name in list(pending):
                if self.running_pid(name) is None:
                    raise self.died_error(name, "died while starting")
                if (probe or self.probe)(name):
                    pending.remove(name)
                    where = commands.where(self.s, name)
                    self.progress(f"{name} ready after {time.monotonic() - t0:.1f}s" + (f" ({where})" if where else ""))
            if pending:
                if time.monotonic() > deadline:
                    raise self.died_error(pending[0], f"not ready after {limit:.0f}s")
                time.sleep(0.5)

    def stop_timeout(self, name: str) -> float:
        """Seconds `name` gets between SIGTERM and SIGKILL: a service's STOP_TIMEOUT; a pipeline process's declared
        PipelineProcess.stop_timeout, which its pid file recorded when it was started (default if none was)."""
        if name in STOP_TIMEOUT:
            return STOP_TIMEOUT[name]
        return supervisor.recorded_stop_timeout(self.files(name).pid_file) or DEFAULT_STOP_TIMEOUT

    def stop_service(self, name: str, timeout: float | None = None) -> bool:
        """SIGTERM one process of this home, SIGKILL after ``timeout`` (default: ``stop_timeout(name)``)."""
        stopped = supervisor.stop(self.files(name), self.stop_timeout(name) if timeout is None else timeout)
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
        ports = commands.ports(self.s, name)
        while time.monotonic() < deadline and not all(is_port_free(p, self.s.host) for _, p in ports):
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
            # all at once, before starting
            check_ports_free([p for n in idle for p in commands.ports(self.s, n)], self.s.host)
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

        timeout: seconds per process before SIGKILL, for every process (default: each one's ``stop_timeout``, long
        enough for its clean shutdown; a pipeline process's is the one it declared)."""
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
        for sub in WIPED_DIRS:
            shutil.rmtree(self.s.home / sub, ignore_errors=True)
        self.state_file.unlink(missing_ok=True)
        self.progress(f"wiped data and stream job checkpoints under {self.s.home}")

    # ---------------------------------------------------------------- status
    def flink_status(self) -> tuple[bool, str]:
        return probes.flink_ready(self.s.flink_python, installer.connector_jar_path(self.s.cache))

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
            out.append(ComponentStatus(name, state, pid, commands.where(self.s, name), rss))
        if flink:
            ok, detail = self.flink_status()
            jar = installer.connector_jar_path(self.s.cache).name
            out.append(ComponentStatus("flink", "ready" if ok else "missing", None,
                                       f"python {self.s.flink_python}, connector {jar}", 0, detail))
        return out

    # ---------------------------------------------------------------- pipeline
    def info(self) -> StackInfo:
        inst, s = self.install(flink=False), self.s
        return StackInfo(home=s.home, logs_dir=s.logs_dir, repo_root=REPO_ROOT, bootstrap=s.bootstrap,
                         thrift_host=s.host, thrift_port=s.thrift_port, python=Path(sys.executable),
                         flink_python=s.flink_python, connector_jar=inst.connector_jar, java_home=inst.java.home)

    def start_pipeline(self, processes: Iterable[PipelineProcess], timeout: float | None = None) -> list[str]:
        """Start each pipeline process that is not running, in order, each ready (its probe) before the next."""
        info = self.info()
        names: list[str] = []
        for proc in processes:
            if proc.name in SERVICES or proc.name == "flink":
                raise StackError(f"pipeline process name {proc.name!r} clashes with a stack component")
            names.append(proc.name)
            if self.running_pid(proc.name) is None:
                self._start_process(proc, info, timeout)
        return names

    def _start_process(self, proc: PipelineProcess, info: StackInfo, timeout: float | None) -> None:
        env = {**os.environ, **info.base_env(), **proc.env(info)}
        pid = supervisor.start(self.files(proc.name), proc.argv(info), env=env, cwd=REPO_ROOT,
                               die_with_parent=self.die_with_parent, stop_timeout=proc.stop_timeout)
        self.progress(f"started {proc.name} (pid {pid}), log {self.files(proc.name).log_file}")
        ready = proc.ready
        if ready is not None:
            self.wait_ready([proc.name], timeout, lambda _: ready(info))

    def dead(self, names: Iterable[str]) -> list[str]:
        return [n for n in names if self.running_pid(n) is None]
