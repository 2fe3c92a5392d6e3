"""Whether a job restored from a checkpoint keeps failing to restore that checkpoint's state. Pure: no I/O, no PyFlink.

Flink's JobManager refuses some checkpoints at once ("Cannot map checkpoint/savepoint state", `config.failure_hint`).
Others fail only in the TaskManagers, when an operator restores its keyed or operator state (a key serializer that
changed between job versions: `StateMigrationException`; a corrupt or missing state file). The restart strategy then
restores the same checkpoint again and again, forever. The entry point polls the job's REST API
(`/jobs/:jobid/exceptions`, `/jobs/:jobid/checkpoints`) and asks `verdict` whether to give up.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from stream_job.config import WITHOUT_THE_CHECKPOINT

# What a TaskManager's failure to restore state says (StreamTaskStateInitializerImpl wraps every keyed/operator state
# backend restore failure in the first; the others name the backend or the cause itself).
RESTORE_MARKERS = (
    "Exception while creating StreamOperatorStateContext",
    "Could not restore keyed state backend",
    "Could not restore operator state backend",
    "StateMigrationException",
)
MIN_FAILURES = 3  # this many failures in a row, each a state restore failure, before giving up
POLL_S = 2.0


@dataclass(frozen=True)
class Failure:
    timestamp_ms: int
    stacktrace: str
    task: str = ""


def failures(exceptions: Mapping[str, Any]) -> list[Failure]:
    """The job's failures, newest first, from the JSON of GET /jobs/:jobid/exceptions (its `exceptionHistory`)."""
    history = exceptions.get("exceptionHistory") or {}
    entries = (history.get("entries") or []) if isinstance(history, Mapping) else []
    out = [Failure(int(e.get("timestamp") or 0), str(e.get("stacktrace") or e.get("exceptionName") or ""),
                   str(e.get("taskName") or "")) for e in entries if isinstance(e, Mapping)]
    return sorted(out, key=lambda f: f.timestamp_ms, reverse=True)


def completed_checkpoints(checkpoints: Mapping[str, Any]) -> int:
    """How many checkpoints this job completed (not counting the one it restored), from GET /jobs/:jobid/checkpoints."""
    counts = checkpoints.get("counts") or {}
    return int(counts.get("completed") or 0) if isinstance(counts, Mapping) else 0


def is_restore_failure(stacktrace: str) -> bool:
    return any(marker in stacktrace for marker in RESTORE_MARKERS)


def root_cause(stacktrace: str) -> str:
    """The deepest cause's line of a Java stack trace ("Caused by: X: message" without the prefix)."""
    lines = [line.strip() for line in stacktrace.splitlines() if line.strip()]
    causes = [line.removeprefix("Caused by:").strip() for line in lines if line.startswith("Caused by:")]
    if causes:
        return causes[-1]
    return lines[0] if lines else "(no stack trace)"


def verdict(recent: Sequence[Failure], completed: int, minimum: int = MIN_FAILURES) -> Failure | None:
    """The newest failure when the restored job should give up, else None.

    Give up only when no checkpoint completed since the start (after one, a failure restores that newer checkpoint,
    not the one given) and the newest `minimum` failures all failed restoring state. Any other failure among them
    (Kafka down, a lost TaskManager, a bug in the job) keeps the restart strategy in charge."""
    if completed > 0 or len(recent) < minimum:
        return None
    newest = recent[:minimum]
    if not all(is_restore_failure(f.stacktrace) for f in newest):
        return None
    return newest[0]


def give_up_message(restore_from: str, failure: Failure, attempts: int) -> str:
    where = f" (task {_one_line(failure.task, 200)})" if failure.task else ""
    return (f"the job cannot restore the state of the checkpoint {restore_from}: {attempts} restores in a row failed "
            f"in the TaskManager, the last{where} with: {_one_line(root_cause(failure.stacktrace))}. This happens "
            "when a job version changed how the state is stored (e.g. a key type), or when the checkpoint's state "
            f"files are corrupt or missing. {WITHOUT_THE_CHECKPOINT}")


def rest_port(settings: Mapping[str, str]) -> int | None:
    """The REST port a Flink configuration names (`rest.bind-port` if it is one port, else `rest.port`; 8081 is
    Flink's default), or None when it is a range (the port taken cannot be known)."""
    bind = (settings.get("rest.bind-port") or "").strip()
    if bind:
        return int(bind) if re.fullmatch(r"\d{1,5}", bind) else None
    port = (settings.get("rest.port") or "8081").strip()
    return int(port) if re.fullmatch(r"\d{1,5}", port) else None


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."
