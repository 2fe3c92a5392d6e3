"""What `iotpipe local status` says about a pipeline process: only what its own readiness probe can tell.

The stack's status knows a pipeline process only by its pid ("running"). A process with a probe (the sync worker's
/readyz, the bridge's /healthz) is "ready" or "not ready" by that probe; one without a probe (the stream job, the
simulator) is "alive": its process runs, nothing more is known, and the row says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

from iotpipe_stack.pipeline_types import PipelineProcess, StackInfo
from iotpipe_stack.status_rows import ComponentStatus

ALIVE = "alive"
NO_PROBE = "no readiness probe: only its process is known to run"


def probed(rows: Iterable[ComponentStatus], processes: Iterable[PipelineProcess],
           info: Callable[[], StackInfo]) -> list[ComponentStatus]:  # fmt: skip
    """The rows with each running pipeline process's state from its probe; `info` is called at most once."""
    by_name = {p.name: p for p in processes}
    cached: list[StackInfo] = []
    out: list[ComponentStatus] = []
    for row in rows:
        proc = by_name.get(row.name)
        if proc is None or row.pid is None or row.state != "running":
            out.append(row)
        elif proc.ready is None:
            out.append(replace(row, state=ALIVE, detail=NO_PROBE))
        else:
            if not cached:
                cached.append(info())
            out.append(replace(row, state="ready" if proc.ready(cached[0]) else "not ready"))
    return out


def all_up(rows: Iterable[ComponentStatus]) -> bool:
    """Every row ready, or a process without a probe to ask (alive, or running but not in the pipeline's list): the
    exit status 0 of `iotpipe local status`."""
    return all(r.ready or r.state in (ALIVE, "running") for r in rows)
