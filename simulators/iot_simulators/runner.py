"""The run loop: paces the simulation against the wall clock, sends each step, reports progress, stops cleanly."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from iot_simulators.config import Plan
from iot_simulators.encoding import Encoder, Produce, site_id
from iot_simulators.engine import Simulation

log = logging.getLogger("iot_simulators")


class Sink(Protocol):
    @property
    def produce(self) -> Produce: ...

    @property
    def failed(self) -> int: ...

    def on_full(self) -> None: ...
    def poll(self) -> None: ...
    def in_flight(self) -> int: ...
    def flush(self, timeout: float) -> int: ...
    @property
    def broken(self) -> bool: ...
    def error_text(self) -> str: ...


@dataclass(frozen=True)
class SiteGroup:
    """The sites of one time zone: their simulation (vectorised over them) and their encoder."""

    sim: Simulation
    encoder: Encoder


def site_groups(plan: Plan, seed: int) -> list[SiteGroup]:
    """One simulation per zone of the plan; all step through the same UTC grid, so they are sent step by step."""
    return [SiteGroup(Simulation(g.timeline, g.site_numbers, seed, plan.late_rules),
                      Encoder([site_id(n) for n in g.site_numbers])) for g in plan.groups()]


@dataclass
class Result:
    produced: int = 0
    steps: int = 0
    late: int = 0
    withheld_unsent: int = 0
    unacknowledged: int = 0
    failed: int = 0
    stopped_by_signal: bool = False
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def delivered(self) -> int:
        """Readings acknowledged by Kafka."""
        return self.produced - self.unacknowledged - self.failed


def run(plan: Plan, groups: Sequence[SiteGroup], sink: Sink, stop: threading.Event, *,
        progress_s: float, flush_timeout_s: float, clock: Callable[[], float] = time.monotonic) -> Result:
    """Send every group's step k before any group's step k + 1 (the groups share the UTC step grid)."""
    res = Result()
    topic = plan.topic
    produce, on_full = sink.produce, sink.on_full
    t0 = clock()
    next_progress = t0 + progress_s
    last_t, last_sent = t0, 0
    sim_now = plan.timeline.start_s
    for outs in zip(*(g.sim.run(plan.stop) for g in groups), strict=True):
        out = outs[0]
        if plan.step_seconds:
            stop.wait(max(0.0, t0 + out.step * plan.step_seconds - clock()))
        if stop.is_set():
            res.stopped_by_signal = True
            break
        for group, group_out in zip(groups, outs, strict=True):
            res.produced += group.encoder.emit_step(group_out, topic, produce, on_full)
            res.late += len(group_out.late) * group.sim.sites
        res.steps += 1
        sim_now = out.instant_s
        sink.poll()
        if sink.broken:
            res.error = sink.error_text()
            break
        now = clock()
        if now >= next_progress:
            sent = res.produced - sink.in_flight() - sink.failed
            log.info("progress: simulated %s (step %d) | sent %d | failed %d | in flight %d | %.0f readings/s | "
                     "late delivered %d", _local(sim_now, plan), out.step, sent, sink.failed,
                     sink.in_flight(), (sent - last_sent) / max(now - last_t, 1e-9), res.late)
            last_t, last_sent = now, sent
            next_progress = now + progress_s
    else:
        # planned end: readings still withheld for later delivery are sent now, so every reading is sent once
        early = 0
        for group in groups:
            pending = group.sim.drain()
            for block in pending:
                res.produced += group.encoder.emit_block(block, topic, produce, on_full)
            res.late += len(pending) * group.sim.sites
            early = max(early, len(pending))
        if early:
            log.info("end of run: delivered %d withheld W1 step(s) early", early)
    res.withheld_unsent = sum(len(g.sim.withheld) * g.sim.sites for g in groups)
    res.unacknowledged = sink.flush(flush_timeout_s)
    res.failed = sink.failed
    if sink.broken:  # (again) after the flush: it may have failed more
        res.error = sink.error_text()
    if res.error is None and res.unacknowledged:
        res.error = f"{res.unacknowledged} reading(s) still unacknowledged after {flush_timeout_s:.0f} s"
    res.seconds = clock() - t0
    return res


def _local(epoch_s: int, plan: Plan) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).astimezone(plan.timeline.tz).isoformat(timespec="minutes")
