"""Start and stop processes with pid files and log files.

Each process is started in its own session (process group), so stopping it kills everything it spawned. A pid file
holds "<pid> <create-time> <stop-timeout> boot-start=<boot id>:<ticks>". The start proves a pid still belongs to the
process we started, so a recycled pid is never signalled; the stop timeout (0: none declared) lets whoever stops it
later (another command) honour what its starter declared. On Linux the start is the boot and the clock ticks after it
(/proc/<pid>/stat), which no step of the wall clock changes: psutil's create time is the boot time read from the wall
clock plus those ticks, so when the wall clock was stepped (NTP, a VM's clock set again after a pause: 84 s once,
during a CI run) every process looked like a stranger and a stop signalled none of them. Pid files without
boot-start (older versions, other systems) are compared by create time. Process lookup, RSS
and kills go through psutil (Linux and macOS); only the optional die-with-parent guard of test sessions is
Linux-specific (prctl; elsewhere it is skipped).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from iotcommon.errors import StackError

_DEAD = (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
_SAME_START_S = 0.05  # create times of one process read twice differ by rounding only


@dataclass(frozen=True)
class ProcFiles:
    name: str
    pid_file: Path
    log_file: Path


def _process(pid: int) -> psutil.Process | None:
    """The live (not zombie) process with this pid, or None."""
    try:
        proc = psutil.Process(pid)
        if proc.status() in _DEAD:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


@dataclass(frozen=True)
class PidRecord:
    """What a pid file says: "<pid> <create-time> [<stop-timeout>] [boot-start=<boot id>:<ticks>]"."""

    pid: int
    created: float  # psutil create time (wall clock)
    stop_timeout: float | None
    boot_start: str | None  # boot id and clock ticks after boot; None in older files and without /proc


def read_record(pid_file: Path) -> PidRecord | None:
    try:
        tokens = pid_file.read_text().split()
        pid, created = int(tokens[0]), float(tokens[1])
    except (FileNotFoundError, IndexError, ValueError):
        return None
    timeout: float | None = None
    with contextlib.suppress(IndexError, ValueError):
        timeout = float(tokens[2])
    boot = next((t.removeprefix(BOOT_START) for t in tokens[2:] if t.startswith(BOOT_START)), None)
    return PidRecord(pid, created, timeout if timeout and timeout > 0 else None, boot)


def read_pid_file(pid_file: Path) -> tuple[int, float] | None:
    rec = read_record(pid_file)
    return (rec.pid, rec.created) if rec else None


def recorded_stop_timeout(pid_file: Path) -> float | None:
    """The stop timeout the process was started with (``start(stop_timeout=...)``), or None if none was recorded."""
    rec = read_record(pid_file)
    return rec.stop_timeout if rec else None


BOOT_START = "boot-start="


def boot_start(pid: int) -> str | None:
    """When the process started as "<boot id>:<clock ticks after boot>" (field 22 of /proc/<pid>/stat), or None
    without /proc. The boot id tells a pid file from before a reboot."""
    try:
        boot_id = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])  # fields from 3 (state) on follow the command's ")"
    except (OSError, IndexError, ValueError):
        return None
    return f"{boot_id}:{ticks}"


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def running_pid(pid_file: Path) -> int | None:
    """The pid recorded in pid_file if that very process is still alive (not a zombie), else None."""
    rec = read_record(pid_file)
    if rec is None:
        return None
    pid = rec.pid
    _reap(pid)
    proc = _process(pid)
    if proc is None:
        return None
    if rec.boot_start is not None:
        return pid if boot_start(pid) == rec.boot_start else None
    try:
        same = abs(proc.create_time() - rec.created) < _SAME_START_S
    except psutil.Error:
        return None
    return pid if same else None


def group_alive(pgid: int) -> bool:
    """Some process of the group is alive (zombies do not count)."""
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] not in _DEAD and os.getpgid(proc.pid) == pgid:
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child when its parent dies (Linux prctl PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)


def start(
    files: ProcFiles,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
    stop_timeout: float | None = None,
) -> int:
    """Start argv in a new session, stdout+stderr appended to the log file; returns the pid.

    die_with_parent: the kernel SIGTERMs the process if the starting process dies (test sessions), so a killed
    pytest leaves no service behind. Off for `iotpipe local up`, whose services outlive the command.
    stop_timeout: seconds a stop should wait after SIGTERM, recorded in the pid file (``recorded_stop_timeout``)."""
    if running_pid(files.pid_file) is not None:
        raise StackError(f"{files.name} is already running (pid file {files.pid_file})")
    files.pid_file.parent.mkdir(parents=True, exist_ok=True)
    files.log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(files.log_file, "ab") as log:
        log.write(f"\n===== iotpipe: starting {files.name} at {time.strftime('%Y-%m-%d %H:%M:%S')} =====\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                cwd=str(cwd) if cwd else None,
                start_new_session=True,
                preexec_fn=_die_with_parent if die_with_parent and sys.platform == "linux" else None,
            )
        except OSError as e:
            raise StackError(f"cannot start {files.name}: {e}") from e
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        started = 0.0  # exited at once: the pid file then never matches
    boot = boot_start(proc.pid)
    identity = f" {BOOT_START}{boot}" if boot is not None else ""
    files.pid_file.write_text(f"{proc.pid} {started!r} {stop_timeout or 0.0!r}{identity}\n")
    return proc.pid


def stop(files: ProcFiles, timeout: float = 20.0) -> bool:
    """SIGTERM the process group, wait up to `timeout`, then SIGKILL. True if something was stopped."""
    pid = running_pid(files.pid_file)
    if pid is None:
        files.pid_file.unlink(missing_ok=True)
        return False
    pgid = pid  # started with start_new_session: the leader's pid is the group id
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        if running_pid(files.pid_file) is None and not group_alive(pgid):
            break
        time.sleep(0.2)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        kill_deadline = time.monotonic() + 10
        while time.monotonic() < kill_deadline and (group_alive(pgid) or running_pid(files.pid_file)):
            _reap(pid)
            time.sleep(0.1)
    files.pid_file.unlink(missing_ok=True)
    return True


def tail(path: Path, lines: int = 30) -> str:
    """The last `lines` lines of a text file ('' if missing)."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 256 * 1024))
            data = fh.read().decode("utf-8", "replace")
    except FileNotFoundError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def kill(files: ProcFiles, timeout: float = 30.0) -> bool:
    """SIGKILL the whole process group at once (a crash: no clean-up), wait until it is gone. True if it ran.

    The pid file stays (like after a real crash); `start` sees the process is dead and starts it again."""
    pid = running_pid(files.pid_file)
    if pid is None:
        return False
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and (running_pid(files.pid_file) is not None or group_alive(pid)):
        _reap(pid)
        time.sleep(0.05)
    return True


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (bytes; 0 if it is gone)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def descendants(pid: int) -> list[int]:
    """Pids of every descendant of a process (children first)."""
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []
