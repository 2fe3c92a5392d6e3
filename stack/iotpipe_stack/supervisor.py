"""Start and stop processes with pid files and log files.

Each process is started in its own session (process group), so stopping it kills everything it spawned. A pid file
holds "<pid> <start-time>": the start time (from /proc) proves a pid still belongs to the process we started, so a
recycled pid is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from iotcommon.errors import StackError


@dataclass(frozen=True)
class ProcFiles:
    name: str
    pid_file: Path
    log_file: Path


def _proc_stat(pid: int) -> tuple[str, int] | None:
    """(state, start time in clock ticks) of a pid, or None if it does not exist."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    rest = raw[raw.rfind(")") + 2 :].split()
    return rest[0], int(rest[19])


def read_pid_file(pid_file: Path) -> tuple[int, int] | None:
    try:
        parts = pid_file.read_text().split()
        return int(parts[0]), int(parts[1])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def running_pid(pid_file: Path) -> int | None:
    """The pid recorded in pid_file if that very process is still alive (not a zombie), else None."""
    rec = read_pid_file(pid_file)
    if rec is None:
        return None
    pid, started = rec
    _reap(pid)
    st = _proc_stat(pid)
    if st is None or st[1] != started or st[0] in ("Z", "X"):
        return None
    return pid


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _die_with_parent() -> None:  # runs in the child between fork and exec
    """Ask the kernel to SIGTERM this child when its parent dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM, 0, 0, 0)


def start(
    files: ProcFiles,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    die_with_parent: bool = False,
) -> int:
    """Start argv in a new session, stdout+stderr appended to the log file; returns the pid.

    die_with_parent: the kernel SIGTERMs the process if the starting process dies (test sessions), so a killed
    pytest leaves no service behind. Off for `iotpipe local up`, whose services outlive the command."""
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
                preexec_fn=_die_with_parent if die_with_parent else None,
            )
        except OSError as e:
            raise StackError(f"cannot start {files.name}: {e}") from e
    st = _proc_stat(proc.pid)
    started = st[1] if st else 0
    files.pid_file.write_text(f"{proc.pid} {started}\n")
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


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and all its descendants (bytes)."""
    total = 0
    for p in [pid, *descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except (FileNotFoundError, ProcessLookupError):
            continue
    return total


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            raw = (d / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        ppid = int(raw[raw.rfind(")") + 2 :].split()[1])
        children.setdefault(ppid, []).append(int(d.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out
