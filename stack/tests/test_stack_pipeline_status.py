"""`iotpipe local status` on pipeline processes: a probe decides ready / not ready; without one the row says "alive"."""

from __future__ import annotations

from pathlib import Path

from iotpipe_stack.pipeline_status import ALIVE, all_up, probed
from iotpipe_stack.pipeline_types import PipelineProcess, StackInfo
from iotpipe_stack.stack import ComponentStatus

INFO = StackInfo(home=Path("/h"), logs_dir=Path("/h/logs"), repo_root=Path("/r"), bootstrap="127.0.0.1:1",
                 thrift_host="127.0.0.1", thrift_port=2, python=Path("/py"), flink_python=Path("/fpy"),
                 connector_jar=Path("/c.jar"), java_home=Path("/j"))  # fmt: skip


def _row(name: str, state: str = "running", pid: int | None = 10) -> ComponentStatus:
    return ComponentStatus(name, state, pid, "somewhere", 0)


def _proc(name: str, ready: bool | None) -> PipelineProcess:
    return PipelineProcess(name=name, argv=lambda s: [], ready=None if ready is None else (lambda s: ready))


def test_each_running_process_is_what_its_probe_says_and_one_without_a_probe_is_alive() -> None:
    calls: list[int] = []

    def info() -> StackInfo:
        calls.append(1)
        return INFO

    rows = [_row("kafka", "ready"), _row("sync", pid=11), _row("bridge", pid=12), _row("job", pid=13),
            _row("sim", "stopped", pid=None)]  # fmt: skip
    procs = [_proc("sync", True), _proc("bridge", False), _proc("job", None), _proc("sim", None)]
    out = probed(rows, procs, info)
    assert [(r.name, r.state) for r in out] == [
        ("kafka", "ready"), ("sync", "ready"), ("bridge", "not ready"), ("job", ALIVE), ("sim", "stopped")]
    assert "no readiness probe" in out[3].detail
    assert calls == [1]  # the stack's info is built once, and only because a probe needed it


def test_all_up_counts_processes_without_a_probe_but_not_a_failed_probe_or_a_stopped_process() -> None:
    assert all_up([_row("kafka", "ready"), _row("job", ALIVE), _row("not-in-pipeline-py", "running")])
    assert not all_up([_row("kafka", "ready"), _row("bridge", "not ready")])
    assert not all_up([_row("sim", "stopped", None)])
