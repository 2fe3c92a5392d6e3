"""Late W1 readings: withheld on time, delivered later, each reading sent exactly once (pure, no Kafka)."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from iot_simulators.encoding import Encoder, site_id
from iot_simulators.engine import Simulation
from iot_simulators.late import LateRule, parse_rules
from iot_simulators.timeline import Timeline
from iotcommon.errors import ConfigError

TZ = ZoneInfo("Europe/Athens")
START = datetime(2020, 1, 1, tzinfo=TZ)
STEPS = 25 * 96  # steps 0 .. 2399


def sent_by_step(late: tuple[str, ...], steps: int = STEPS, sites: int = 2,
                 drain: bool = True) -> list[tuple[int, dict]]:
    """(step at which it was sent, message) in send order; drained readings get step = steps."""
    sim = Simulation(Timeline(START, TZ), list(range(1, sites + 1)), 11, parse_rules(late))
    enc = Encoder([site_id(n) for n in sim.site_numbers])
    out: list[tuple[int, dict]] = []
    for step in sim.run(steps):
        out.extend((step.step, json.loads(p)) for _, p in enc.encode_all([step]))
    if drain:
        out.extend((steps, json.loads(p)) for _, p in enc.encode_blocks(sim.drain()))
    return out


def at(step: int) -> datetime:
    return START + timedelta(minutes=15 * step)


@pytest.fixture(scope="module")
def default_run() -> list[tuple[int, dict]]:
    return sent_by_step(("20:2d", "120:10d"), drain=False)


def test_late_readings_arrive_2_days_late_every_20_steps_and_10_days_late_every_120(
        default_run: list[tuple[int, dict]]) -> None:
    lateness: Counter[tuple[timedelta, str]] = Counter()
    for step, m in default_run:
        delay = at(step) - datetime.fromisoformat(m["ts"])
        if m["sensor"] == "Mov1":
            assert timedelta(0) <= delay < timedelta(minutes=15)  # sent at the end of its quarter
            continue
        if delay == timedelta(0):
            continue
        assert m["sensor"] == "W1"
        assert m["site"] in ("site-00001", "site-00002")
        if delay == timedelta(days=2):
            assert step % 20 == 0
        else:
            assert delay == timedelta(days=10)
            assert step % 120 == 0
        lateness[(delay, m["site"])] += 1
    # expected: every multiple of 20 from 2 days (192 steps) on, every multiple of 120 from 10 days (960) on
    two_days = sum(1 for k in range(193, STEPS) if k % 20 == 0)
    ten_days = sum(1 for k in range(961, STEPS) if k % 120 == 0)
    assert two_days == 110 and ten_days == 11  # 200, 220, .. 2380 and 1080, 1200, .. 2280
    for site in ("site-00001", "site-00002"):
        assert lateness[(timedelta(days=2), site)] == two_days
        assert lateness[(timedelta(days=10), site)] == ten_days


def test_withheld_readings_are_not_sent_on_time(default_run: list[tuple[int, dict]]) -> None:
    sent_late = {(m["site"], m["ts"]) for step, m in default_run
                 if m["sensor"] == "W1" and at(step) != datetime.fromisoformat(m["ts"])}
    on_time = Counter((m["site"], m["ts"]) for step, m in default_run
                      if m["sensor"] == "W1" and at(step) == datetime.fromisoformat(m["ts"]))
    assert sent_late
    assert not sent_late & set(on_time)
    assert set(on_time.values()) == {1}


@pytest.mark.parametrize("late", [("20:2d", "120:10d"), ("3:5h", "7:1d", "11:3"), ()])
def test_every_reading_is_sent_exactly_once(late: tuple[str, ...]) -> None:
    run = sent_by_step(late)
    ids = Counter((m["site"], m["sensor"], m["seq"]) for _, m in run)
    assert set(ids.values()) == {1}
    stamps = Counter((m["site"], m["sensor"], m["ts"]) for _, m in run if m["sensor"] != "Mov1")
    assert set(stamps.values()) == {1}
    # W1 reports every quarter of the run once, in seq order of its timestamps
    for site in ("site-00001", "site-00002"):
        w1 = sorted((m["seq"], m["ts"]) for _, m in run if m["sensor"] == "W1" and m["site"] == site)
        assert [s for s, _ in w1] == list(range(STEPS - 1))
        assert [datetime.fromisoformat(ts) for _, ts in w1] == [at(k) for k in range(1, STEPS)]


def test_late_readings_carry_the_values_generated_on_time() -> None:
    with_late = {(m["site"], m["ts"]): m for _, m in sent_by_step(("20:2d", "120:10d")) if m["sensor"] == "W1"}
    without = {(m["site"], m["ts"]): m for _, m in sent_by_step(()) if m["sensor"] == "W1"}
    assert with_late == without


def test_readings_still_withheld_at_the_planned_end_are_delivered_then() -> None:
    run = sent_by_step(("20:2d", "120:10d"))
    drained = [m for step, m in run if step == STEPS]
    # withheld within the last 2 days (for k % 20 == 0 beyond the end) and 10 days (k % 120 == 0)
    expected = {j for j in range(1, STEPS) if (j + 192) % 20 == 0 and j + 192 >= STEPS} | \
               {j for j in range(1, STEPS) if (j + 960) % 120 == 0 and j + 960 >= STEPS}
    assert sorted({m["seq"] + 1 for m in drained}) == sorted(expected)


def test_rules_are_parsed_and_checked() -> None:
    assert parse_rules(("20:2d", "120:10d")) == (LateRule(20, 192), LateRule(120, 960))
    assert parse_rules(("5:90m", "4:2h", "3:7")) == (LateRule(5, 6), LateRule(4, 8), LateRule(3, 7))
    for bad in ("20", "x:2d", "20:10m", "0:1d", "20:0", "20:2w"):
        with pytest.raises(ConfigError):
            parse_rules((bad,))
