"""The run loop with a FAKE sink and a fake clock (unit test): pacing, planned end, stop signal, delivery failure."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from zoneinfo import ZoneInfo

from iot_simulators.config import Plan
from iot_simulators.encoding import Encoder, Produce, site_id
from iot_simulators.engine import Simulation
from iot_simulators.late import parse_rules
from iot_simulators.runner import SiteGroup, run
from iot_simulators.timeline import Timeline

TZ = ZoneInfo("Europe/Athens")


class FakeSink:
    def __init__(self, fail_after: int | None = None) -> None:
        self.messages: list[tuple[str, bytes, bytes]] = []
        self.flushed = False
        self.failed = 0
        self.fail_after = fail_after

    @property
    def produce(self) -> Produce:
        return lambda topic, value, key: self.messages.append((topic, value, key))

    def on_full(self) -> None:
        raise AssertionError

    def poll(self) -> None:
        if self.fail_after is not None and len(self.messages) >= self.fail_after:
            self.failed = 1

    def in_flight(self) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        self.flushed = True
        return 0

    @property
    def broken(self) -> bool:
        return self.failed > 0

    def error_text(self) -> str:
        return "1 reading(s) could not be delivered"


class FakeTime:
    """A clock plus a stop event whose wait() advances the clock instead of sleeping."""

    def __init__(self, stop_at_step_wait: int | None = None) -> None:
        self.now = 100.0
        self.waited: list[float] = []
        self.stop_after = stop_at_step_wait

    def clock(self) -> float:
        return self.now

    def event(self) -> threading.Event:
        fake = self

        class Ev(threading.Event):
            def wait(self, timeout: float | None = None) -> bool:
                fake.waited.append(timeout or 0.0)
                fake.now += timeout or 0.0
                if fake.stop_after is not None and len(fake.waited) > fake.stop_after:
                    self.set()
                return self.is_set()

        return Ev()


def setup(steps: int | None, step_seconds: float) -> tuple[Plan, list[SiteGroup]]:
    timeline = Timeline(datetime(2020, 1, 1, tzinfo=TZ), TZ)
    p = Plan(timeline, [1, 2], steps, step_seconds, parse_rules(("20:2d",)), "t.readings")
    sim = Simulation(timeline, p.site_numbers, 1, p.late_rules)
    return p, [SiteGroup(sim, Encoder([site_id(n) for n in p.site_numbers]))]


def test_steps_are_paced_by_the_wall_clock() -> None:
    p, groups = setup(10, 0.5)
    sink, ft = FakeSink(), FakeTime()
    res = run(p, groups, sink, ft.event(), progress_s=1, flush_timeout_s=1, clock=ft.clock)
    assert res.ok and res.steps == 10 and sink.flushed
    assert ft.waited == [0.0] + [0.5] * 9  # step k is sent at start + k * 0.5 s
    assert all(topic == "t.readings" for topic, _, _ in sink.messages)


def test_planned_end_sends_the_withheld_readings() -> None:
    p, groups = setup(300, 0.0)
    sink = FakeSink()
    res = run(p, groups, sink, threading.Event(), progress_s=1, flush_timeout_s=1)
    assert res.ok and res.withheld_unsent == 0
    site1 = [json.loads(v) for _, v, k in sink.messages if k == b"site-00001"]  # the key is the site
    w1 = sorted(m["seq"] for m in site1 if m["sensor"] == "W1")
    assert w1 == list(range(299))
    assert res.produced == len(sink.messages)


def test_a_stop_signal_ends_the_run_after_flushing() -> None:
    p, groups = setup(None, 1.0)
    sink, ft = FakeSink(), FakeTime(stop_at_step_wait=250)
    res = run(p, groups, sink, ft.event(), progress_s=1, flush_timeout_s=1, clock=ft.clock)
    assert res.ok and res.stopped_by_signal and sink.flushed
    assert res.steps == 250
    assert res.withheld_unsent > 0  # readings withheld for later delivery were not sent: the run was cut short
    ids = [(k, json.loads(v)["sensor"], json.loads(v)["seq"]) for _, v, k in sink.messages]
    assert len(ids) == len(set(ids)) == res.produced


def test_a_delivery_failure_stops_the_run_with_an_error() -> None:
    p, groups = setup(None, 0.0)
    sink = FakeSink(fail_after=1000)
    res = run(p, groups, sink, threading.Event(), progress_s=1, flush_timeout_s=1)
    assert not res.ok and "could not be delivered" in (res.error or "")
    assert sink.flushed


def test_a_full_queue_makes_the_simulator_wait_never_fail() -> None:
    """A FAKE producer whose queue is full for several attempts in a row: every message still goes in, once."""
    p, groups = setup(30, 0.0)
    accepted: list[bytes] = []
    attempts = {"n": 0}

    def produce(_topic: str, value: bytes, _key: bytes) -> None:
        attempts["n"] += 1
        if attempts["n"] % 7 in (1, 2, 3, 4):  # four refusals in a row, again and again
            raise BufferError("Local: Queue full")
        accepted.append(value)

    class FullSink(FakeSink):
        waits = 0

        @property
        def produce(self) -> Produce:
            return produce

        def on_full(self) -> None:
            FullSink.waits += 1

    sink = FullSink()
    res = run(p, groups, sink, threading.Event(), progress_s=1, flush_timeout_s=1)
    assert res.ok and res.produced == len(accepted) > 0
    assert FullSink.waits >= 4 * (len(accepted) // 3)
    assert len({json.dumps(json.loads(v), sort_keys=True) for v in accepted}) == len(accepted)
