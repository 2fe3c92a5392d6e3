"""The restore guard's decision (stream_job.restore_guard, pure) and its polling loop
(stream_job.__main__.guard_restore, driven here by a fake REST client: a unit test, no Flink). The real job is in
test_job_restore_guard.py."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from stream_job import restore_guard
from stream_job.__main__ import guard_restore
from stream_job.restore_guard import (
    Failure,
    completed_checkpoints,
    failures,
    give_up_message,
    is_restore_failure,
    rest_port,
    root_cause,
    verdict,
)


def trace(name: str) -> str:
    """A stack trace as Flink 2.2 gives it in GET /jobs/:jobid/exceptions (`stacktrace`), shortened to the message
    lines and a frame or so each (restore_traces/). Recorded from the real job (test_job_restore_guard.py):
    keyed_state_file_truncated.txt (the checkpoint's state files truncated) and kafka_down.txt (Kafka stopped while
    the job restores a good checkpoint); the others follow Flink's messages."""
    return (Path(__file__).parent / "restore_traces" / f"{name}.txt").read_text()


KEY_SERIALIZER_CHANGED = trace("key_serializer_changed")
STATE_FILE_TRUNCATED = trace("keyed_state_file_truncated")
STATE_FILE_TRUNCATED_TASK = "GroupWindowAggregate[14] -> Calc[15] (1/1) - execution #1"  # its taskName
OPERATOR_STATE_TRUNCATED = trace("operator_state_file_truncated")
KAFKA_DOWN = trace("kafka_down")
TASK_LOST = trace("task_manager_lost")
CHECKPOINT = "file:///data/checkpoints/iotpipe/7f3c/chk-42"


def history(*stacks: str, start: int = 1_000) -> dict[str, Any]:
    """A GET /jobs/:jobid/exceptions answer (the fields Flink 2.2 gives), newest first, as Flink lists it."""
    entries = [{"exceptionName": s.splitlines()[0].split(":")[0], "stacktrace": s, "timestamp": start - i,
                "taskName": STATE_FILE_TRUNCATED_TASK, "location": "localhost:43211", "endpoint": "localhost:43211",
                "taskManagerId": "localhost:43211-2fa1b3", "failureLabels": {}, "concurrentExceptions": []}
               for i, s in enumerate(stacks)]
    return {"exceptionHistory": {"entries": entries, "truncated": False}}


def checkpoints(completed: int) -> dict[str, Any]:
    return {"counts": {"restored": 1, "total": completed, "in_progress": 0, "completed": completed, "failed": 0},
            "latest": {"completed": None, "savepoint": None, "failed": None,
                       "restored": {"id": 42, "external_path": CHECKPOINT}}}


def test_state_restore_failures_are_recognised_and_others_are_not() -> None:
    assert is_restore_failure(KEY_SERIALIZER_CHANGED)
    assert is_restore_failure(STATE_FILE_TRUNCATED)
    assert is_restore_failure(OPERATOR_STATE_TRUNCATED)
    assert not is_restore_failure(KAFKA_DOWN)
    assert not is_restore_failure(TASK_LOST)


def test_the_root_cause_is_the_deepest_caused_by_line() -> None:
    assert root_cause(KEY_SERIALIZER_CHANGED).startswith(
        "org.apache.flink.util.StateMigrationException: The new key serializer")
    assert root_cause(STATE_FILE_TRUNCATED) == "java.io.EOFException"
    assert root_cause(OPERATOR_STATE_TRUNCATED) == "java.io.EOFException"
    assert root_cause(TASK_LOST).startswith("org.apache.flink.runtime.jobmaster.JobMasterException: TaskManager")
    assert root_cause("") == "(no stack trace)"


def test_failures_are_read_newest_first_from_the_exception_history() -> None:
    doc = history(KAFKA_DOWN, KEY_SERIALIZER_CHANGED)
    doc["exceptionHistory"]["entries"].reverse()  # whatever order the answer has
    got = failures(doc)
    assert [f.stacktrace for f in got] == [KAFKA_DOWN, KEY_SERIALIZER_CHANGED]
    assert got[0] == Failure(1_000, KAFKA_DOWN, STATE_FILE_TRUNCATED_TASK)
    assert failures({}) == [] and failures({"exceptionHistory": None}) == []


def test_checkpoint_counts() -> None:
    assert completed_checkpoints(checkpoints(0)) == 0
    assert completed_checkpoints(checkpoints(3)) == 3
    assert completed_checkpoints({}) == 0


def recent(*stacks: str) -> list[Failure]:
    return failures(history(*stacks))


def test_gives_up_after_three_restore_failures_in_a_row_without_a_checkpoint() -> None:
    three = recent(KEY_SERIALIZER_CHANGED, KEY_SERIALIZER_CHANGED, KEY_SERIALIZER_CHANGED)
    assert verdict(three, 0) == three[0]
    mixed = recent(STATE_FILE_TRUNCATED, OPERATOR_STATE_TRUNCATED, KEY_SERIALIZER_CHANGED, KAFKA_DOWN)
    assert verdict(mixed, 0) == mixed[0]  # an older, other failure does not matter: the last three are restores


@pytest.mark.parametrize("stacks, completed", [
    ((KEY_SERIALIZER_CHANGED,) * 2, 0),  # not yet three
    ((KEY_SERIALIZER_CHANGED,) * 3, 1),  # a checkpoint completed: later failures restore that one
    ((KEY_SERIALIZER_CHANGED, KAFKA_DOWN, KEY_SERIALIZER_CHANGED), 0),  # Kafka down in between
    ((KAFKA_DOWN,) * 5, 0),  # Kafka down while the restored job starts: the restart strategy's business
    ((TASK_LOST, STATE_FILE_TRUNCATED, STATE_FILE_TRUNCATED), 0),  # the newest failure is another one
    ((), 0),
])
def test_keeps_restarting_otherwise(stacks: tuple[str, ...], completed: int) -> None:
    assert verdict(recent(*stacks), completed) is None


def test_the_message_names_the_checkpoint_the_cause_and_the_way_out() -> None:
    message = give_up_message(CHECKPOINT, Failure(1, KEY_SERIALIZER_CHANGED, STATE_FILE_TRUNCATED_TASK), 3)
    assert f"checkpoint {CHECKPOINT}" in message
    assert f"task {STATE_FILE_TRUNCATED_TASK}" in message
    assert "with: org.apache.flink.util.StateMigrationException: The new key serializer" in message
    assert "--restore none (IOTPIPE_RESTORE=none)" in message and "move the checkpoint directory away" in message
    assert "without the open days' state" in message and "committed offsets" in message
    assert "\n" not in give_up_message(CHECKPOINT, Failure(1, "X: a\n\tat b\nCaused by: Y: multi\nline", "t"), 3)


def test_rest_port_from_the_flink_configuration() -> None:
    assert rest_port({}) == 8081  # Flink's default
    assert rest_port({"rest.port": "8082"}) == 8082
    assert rest_port({"rest.bind-port": "40123", "rest.port": "8081"}) == 40123
    assert rest_port({"rest.bind-port": "50100-50200"}) is None  # which one it took cannot be known


class FakeRest:
    """Stands in for the job's REST API (unit test): one scripted step per poll (the poll asks /checkpoints first)."""

    def __init__(self, steps: list[tuple[int, dict[str, Any]] | OSError]) -> None:
        self.steps = steps
        self.polls = 0

    def get(self, url: str) -> Any:
        if url.endswith("/checkpoints"):
            self.polls += 1
        step = self.steps[min(self.polls, len(self.steps)) - 1]
        if isinstance(step, OSError):
            raise step
        completed, doc = step
        if url.endswith("/checkpoints"):
            return checkpoints(completed)
        assert url.endswith("/exceptions?maxExceptions=3"), url
        return doc


def run_guard(rest: FakeRest) -> tuple[list[str], bool]:
    stop = threading.Event()
    said: list[str] = []
    thread = threading.Thread(target=guard_restore, args=("http://127.0.0.1:1/jobs/j", CHECKPOINT, stop, said.append,
                                                          rest.get))
    thread.start()
    thread.join(60)
    finished = not thread.is_alive()
    stop.set()
    thread.join(10)
    return said, finished and stop.is_set()


def test_the_polling_loop_gives_up_and_stops_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stream_job.__main__.POLL_S", 0.01)
    rest = FakeRest([OSError("connection refused"), (0, history()), (0, history(KEY_SERIALIZER_CHANGED)),
                     (0, history(*[KEY_SERIALIZER_CHANGED] * 3))])
    said, stopped = run_guard(rest)
    assert stopped and len(said) == 1
    newest = failures(history(KEY_SERIALIZER_CHANGED))[0]
    assert said[0] == give_up_message(CHECKPOINT, newest, restore_guard.MIN_FAILURES)


def test_the_polling_loop_ends_quietly_once_a_checkpoint_completed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("stream_job.__main__.POLL_S", 0.01)
    stop = threading.Event()
    said: list[str] = []
    rest = FakeRest([(0, history(KAFKA_DOWN)), (1, history())])
    thread = threading.Thread(target=guard_restore, args=("http://127.0.0.1:1/jobs/j", CHECKPOINT, stop, said.append,
                                                          rest.get))
    thread.start()
    thread.join(60)
    assert not thread.is_alive() and said == [] and not stop.is_set()
