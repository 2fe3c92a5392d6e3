"""Each pipeline process is stopped with the stop timeout it declares (PipelineProcess.stop_timeout), whoever stops it:
`LocalStack.down`, `stop_service`, or `iotpipe local down` (`make stop`) run later as another command. Real child
processes, no services: the stack's ``info`` (which installs Java, Kafka, ...) is replaced by a hand-made StackInfo."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from iotcommon.errors import StackError
from iotpipe_stack import cli, supervisor
from iotpipe_stack.pipeline_types import DEFAULT_STOP_TIMEOUT, PipelineProcess, StackInfo
from iotpipe_stack.settings import resolve
from iotpipe_stack.stack import STOP_TIMEOUT, LocalStack

# A process that is ready once it wrote <dir>/<name>.ready; on SIGTERM it shuts down for `seconds`, then writes
# <dir>/<name>.graceful and exits 0. seconds < 0: it ignores SIGTERM (only SIGKILL ends it).
CHILD = """
import pathlib, signal, sys, time
out, seconds = pathlib.Path(sys.argv[1]), float(sys.argv[2])
def on_term(signum, frame):
    if seconds < 0:
        return
    time.sleep(seconds)
    out.with_suffix(".graceful").write_text("done")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
out.with_suffix(".ready").write_text("ready")
while True:
    time.sleep(0.1)
"""


def stack_in(home: Path) -> LocalStack:
    return LocalStack(resolve({}, {"home": str(home)}), progress=lambda _: None)


def child(out: Path, name: str, shutdown_s: float, stop_timeout: float = DEFAULT_STOP_TIMEOUT) -> PipelineProcess:
    base = out / name
    return PipelineProcess(name, argv=lambda s: [str(s.python), "-c", CHILD, str(base), str(shutdown_s)],
                           ready=lambda s: base.with_suffix(".ready").exists(), stop_timeout=stop_timeout)


def fake_info(home: Path) -> StackInfo:
    return StackInfo(home=home, logs_dir=home / "logs", repo_root=home, bootstrap="127.0.0.1:1",
                     thrift_host="127.0.0.1", thrift_port=1, python=Path(sys.executable),
                     flink_python=Path(sys.executable), connector_jar=home / "none.jar", java_home=home)


def spy_on_stops(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """(name, timeout) of every supervisor.stop from now on; the real stop still runs."""
    used: list[tuple[str, float]] = []
    real_stop = supervisor.stop

    def stop(files: supervisor.ProcFiles, timeout: float = 20.0) -> bool:
        used.append((files.name, timeout))
        return real_stop(files, timeout)

    monkeypatch.setattr(supervisor, "stop", stop)
    return used


@pytest.fixture
def pipeline_stack(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[LocalStack, Path, Path]:
    """(a stack whose pipeline processes are real children, its home, the folder the children write into)."""
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    stack = stack_in(home)
    monkeypatch.setattr(stack, "info", lambda: fake_info(home))
    return stack, home, out


def test_each_process_is_stopped_with_its_declared_timeout_also_by_a_later_iotpipe_local_down(
        pipeline_stack: tuple[LocalStack, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    stack, home, out = pipeline_stack
    # patient: needs 1 s to shut down, declares 30 s; stubborn: never stops on SIGTERM, declares 0.5 s; plain: the
    # default
    stack.start_pipeline([child(out, "patient", 1.0, stop_timeout=30.0), child(out, "stubborn", -1, stop_timeout=0.5),
                          child(out, "plain", 0.0)])
    pids = {n: stack.running_pid(n) for n in ("patient", "stubborn", "plain")}
    assert all(pids.values())
    stops = spy_on_stops(monkeypatch)
    # `make stop`: another command, with a LocalStack of its own that knows only the home
    assert cli.main(["local", "down", "--home", str(home)], environ={}) == 0
    used = dict(stops)
    assert {n: used[n] for n in pids} == {"patient": 30.0, "stubborn": 0.5, "plain": DEFAULT_STOP_TIMEOUT}
    assert {n: used[n] for n in STOP_TIMEOUT} == STOP_TIMEOUT  # the services' own (none was running)
    assert all(stack.running_pid(n) is None and not supervisor.group_alive(pid or 0) for n, pid in pids.items())
    assert (out / "patient.graceful").exists() and (out / "plain.graceful").exists()  # their clean shutdowns ran
    assert not (out / "stubborn.graceful").exists()  # killed after its 0.5 s


def test_stop_service_and_down_use_the_declared_timeout_unless_given_one(
        pipeline_stack: tuple[LocalStack, Path, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    stack, _, out = pipeline_stack
    stack.start_pipeline([child(out, "job", 0.0, stop_timeout=40.0)])
    assert stack.stop_timeout("job") == 40.0 and stack.stop_timeout("hbase") == STOP_TIMEOUT["hbase"]
    stops = spy_on_stops(monkeypatch)
    assert stack.stop_service("job")
    stack.start_pipeline([child(out, "job", 0.0, stop_timeout=40.0)])
    assert stack.down(timeout=5.0) == ["job"]  # an explicit timeout is for every process (test teardown)
    assert stops[:2] == [("job", 40.0), ("job", 5.0)]


def test_a_pid_file_without_a_recorded_timeout_gets_the_default(tmp_path: Path) -> None:
    stack = stack_in(tmp_path)
    pid_file = stack.files("old").pid_file
    pid_file.parent.mkdir(parents=True)
    pid_file.write_text("12345 1700000000.5\n")  # written before stop timeouts were recorded
    assert supervisor.recorded_stop_timeout(pid_file) is None
    assert stack.stop_timeout("old") == DEFAULT_STOP_TIMEOUT
    pid_file.write_text("12345 1700000000.5 40.0\n")
    assert supervisor.recorded_stop_timeout(pid_file) == 40.0
    assert supervisor.read_pid_file(pid_file) == (12345, 1700000000.5)


def test_a_stop_timeout_must_be_positive() -> None:
    with pytest.raises(StackError, match="stop_timeout"):
        PipelineProcess("x", argv=lambda s: [], stop_timeout=0.0)
