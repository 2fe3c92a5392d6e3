"""The Java day logic the job runs (``dev.iotpipe.flink.DayLogic``) against the Python reference core
(``stream_job.core``) on random inputs: both must emit the same messages, byte for byte (floats as Python's repr,
JSON as iotcommon writes it), register the same timers and count the same events. ``test_job_core`` checks both
against hand-worked expectations; this covers what no hand-written case reaches (float formatting, sums of many
values, interleavings of late readings, markers, timers and idle limits)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from java_core import JavaCore, JavaStore, compile_pure

from iotcommon.days import ms_to_ts
from iotcommon.sensors import SENSORS
from iotcommon.zones import SiteZones
from stream_job.core import DayAggregator, DictStore

EMITTED_AT = datetime(2030, 1, 1, tzinfo=UTC)
ZONES = SiteZones("Europe/Athens", {f"ny-{n}": "America/New_York" for n in range(1000)})  # sites in another zone
LATENESS_MS = 2 * 86_400_000
START_MS = 1_585_000_000_000  # 2020-03-23: the window below crosses Athens' and New York's DST change
QUARTER_MS = 900_000
_sites = itertools.count()


@pytest.fixture(scope="module")
def java(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JavaCore]:
    core = JavaCore(compile_pure(tmp_path_factory.mktemp("day-logic")), ZONES, LATENESS_MS, EMITTED_AT)
    yield core
    core.close()


values = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.floats(allow_nan=False, allow_infinity=False),
                   st.integers(-1000, 1000).map(float), st.sampled_from([0.1, 0.2, 0.3, 1e-5, 1e16, 123456.789]))
events = st.lists(st.one_of(
    # a reading: sensor, quarter (from START_MS), value, seq, the partition it came from
    st.tuples(st.just("reading"), st.sampled_from(sorted(SENSORS)), st.integers(0, 4 * 96 * 5), values,
              st.integers(0, 3), st.integers(0, 1)),
    st.tuples(st.just("watermark"), st.integers(0, 4 * 96 * 5)),  # the watermark moves to that quarter
    st.tuples(st.just("marker"), st.integers(0, 1)),  # a dead letter on that partition
    st.tuples(st.just("idle")),
), max_size=60)


def run(core: Any, store: Any, site: str, script: list[tuple[Any, ...]]) -> list[Any]:
    """Feed the script to a core; everything it answered, in order (the timers fired as the watermark passes)."""
    answers: list[Any] = []
    clocks: dict[int, int] = {}
    sseqs: dict[int, int] = {}
    timers: set[int] = set()
    watermark = -(2**63)

    def stamp(part: int, ts_ms: int) -> tuple[int, int]:
        clocks[part] = max(clocks.get(part, 0), ts_ms)
        sseqs[part] = sseqs.get(part, 0) + 1
        return clocks[part], sseqs[part]

    for event in script:
        if event[0] == "reading":
            _, sensor, quarter, value, seq, part = event
            ts_ms = START_MS + quarter * QUARTER_MS
            clock, sseq = stamp(part, ts_ms)
            out, new = core.on_reading(store, site, sensor, ms_to_ts(ts_ms), ts_ms, value, seq, clock, sseq,
                                       watermark, part)
            timers.update(new)
            answers.append((out, sorted(new)))
        elif event[0] == "watermark":
            watermark = max(watermark, START_MS + event[1] * QUARTER_MS)
            for t in sorted(t for t in timers if t <= watermark):
                timers.discard(t)
                answers.append(("timer", t, core.on_timer(store, site, t)))
        elif event[0] == "marker":
            clock, sseq = stamp(event[1], clocks.get(event[1], 0))
            answers.append(("marker", core.on_marker(store, site, clock, sseq, watermark, event[1])))
        else:
            answers.append(("idle", core.on_idle(store, site)))
    answers.append(("counts", {name: n for name, n in core.counts.items() if n}))
    core.counts.clear()
    return answers


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(script=events, ny=st.booleans())
def test_java_and_python_emit_the_same_bytes(java: JavaCore, script: list[tuple[Any, ...]], ny: bool) -> None:
    site = f"{'ny' if ny else 'site'}-{next(_sites)}"  # a site of its own: no state from another example
    python = DayAggregator(ZONES, LATENESS_MS, clock=lambda: EMITTED_AT)
    expected = run(python, DictStore(), site, script)
    got = run(java, java_store(java, site), site, script)
    assert got == expected


def java_store(core: JavaCore, site: str) -> JavaStore:
    return JavaStore(core, site)


@pytest.mark.parametrize("value", [0.0, -0.0, 0.1, 1.0, 22.0, 1e-5, 0.0001, 1e16, 1e15, 123456789012345678.0,
                                   5e-324, 1.7976931348623157e308, 2.0**-30, 2.0**60, -1.5e-7, 9007199254740993.0,
                                   0.30000000000000004, 100.0 / 3])
def test_floats_are_written_as_pythons_repr(java: JavaCore, value: float) -> None:
    """A late reading echoes its value: the Java JSON has the digits Python's json.dumps writes."""
    site = f"repr-{next(_sites)}"
    store = java_store(java, site)
    far = START_MS + 10 * 86_400_000
    java.on_reading(store, site, "TH1", ms_to_ts(far), far, 1.0, 1, far, 1, -(2**63))
    out, _ = java.on_reading(store, site, "TH1", ms_to_ts(START_MS), START_MS, value, 2, far, 2, -(2**63))
    (late,) = out
    text = late.value.decode()
    assert f'"value":{json.dumps(value)},' in text
    assert json.loads(text)["reading"]["value"] == value



@pytest.mark.parametrize("clock", [datetime(2030, 1, 1, 0, 0, 0, 123_000, tzinfo=UTC),
                                   datetime(2030, 1, 1, 0, 0, 0, 1_000, tzinfo=UTC),
                                   datetime(1969, 12, 31, 23, 59, 59, 5_000, tzinfo=UTC)])
def test_emitted_at_has_the_python_form_of_the_wall_clock(tmp_path_factory: pytest.TempPathFactory,
                                                          clock: datetime) -> None:
    """A closed day's ``emitted_at`` is the wall clock in iso_z form, also with milliseconds, and before 1970."""
    script: list[tuple[Any, ...]] = [("reading", sensor, q, float(q), 1, 0) for sensor in ("TH1", "W1") for q in (0, 1)]
    script.append(("watermark", 4 * 96 * 3))  # far past the day's end and its lateness: the day closes
    core = JavaCore(compile_pure(tmp_path_factory.mktemp("day-logic-clock")), ZONES, LATENESS_MS, clock)
    try:
        got = run(core, java_store(core, "clock"), "clock", script)
    finally:
        core.close()
    expected = run(DayAggregator(ZONES, LATENESS_MS, clock=lambda: clock), DictStore(), "clock", script)
    assert got == expected
    emitted = [json.loads(o.value)["emitted_at"] for answer in got if answer[0] == "timer" for o in answer[2]
               if o.topic == "aggregates"]
    assert emitted, "the script closes a day"
    assert all(e.endswith("." + f"{clock.microsecond // 1000:03d}Z") for e in emitted)
