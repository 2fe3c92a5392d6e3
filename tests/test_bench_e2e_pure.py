"""The pure parts of bench/bench_e2e.py (no services): the load plan, percentiles, sustained steps, saturation point,
and the doc section it rewrites. Expected values are worked out by hand in each test."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from e2e.load import PlanEncoder, higher_baseline, median_baseline
from e2e.probes import HeadProbes
from e2e.report import finite, replace_section
from e2e.schedule import SENSOR_NAMES, make_plan, value_of
from e2e.stats import Window, percentile, saturation

from iotcommon.messages import Reading, decode_reading
from iotcommon.sensors import SENSORS

NOW = datetime(2026, 11, 29, 23, 0, tzinfo=UTC)


def test_the_plan_puts_steps_back_to_back_and_fixes_each_readings_due_time() -> None:
    plan = make_plan([100, 400], hold_s=10, sites=2, now=NOW)
    assert [(s.start_index, s.end_index, s.start_s) for s in plan.steps] == [(0, 1000, 0.0), (1000, 5000, 10.0)]
    assert plan.due_s(0) == 0.0 and plan.due_s(999) == 9.99  # 100/s
    assert plan.due_s(1000) == 10.0 and plan.due_s(1400) == 11.0  # 400/s from t = 10 s
    assert plan.total == 5000


def test_a_warm_up_runs_first_at_the_first_rate_and_is_not_measured() -> None:
    plan = make_plan([100, 400], hold_s=10, sites=2, now=NOW, warmup_s=30)
    # 30 s at 100/s = readings 0..2999 first; the measured steps follow back to back
    assert [(s.rate, s.start_index, s.end_index, s.start_s) for s in plan.steps] == \
        [(100, 0, 3000, 0.0), (100, 3000, 4000, 30.0), (400, 4000, 8000, 40.0)]
    assert plan.warmup and plan.measured == plan.steps[1:]
    assert plan.due_s(3000) == 30.0 and plan.total == 8000
    unwarmed = make_plan([100, 400], hold_s=10, sites=2, now=NOW)
    assert not unwarmed.warmup and unwarmed.measured == unwarmed.steps


def test_a_warm_up_can_run_below_the_first_rate() -> None:
    plan = make_plan([400, 800], hold_s=10, sites=2, now=NOW, warmup_s=30, warmup_rate=100)
    # 30 s at 100/s = readings 0..2999, then 10 s at 400/s and 10 s at 800/s
    assert [(s.rate, s.start_index, s.end_index, s.start_s) for s in plan.steps] == \
        [(100, 0, 3000, 0.0), (400, 3000, 7000, 30.0), (800, 7000, 15000, 40.0)]
    assert plan.measured == plan.steps[1:]


def test_a_readings_identity_gives_back_its_index() -> None:
    plan = make_plan([100], hold_s=10, sites=3, now=NOW)
    assert len(SENSOR_NAMES) == 7 and plan.devices == 21
    # index 47 = step 2 (47 // 21), device 5 (47 % 21): site 0, sensor 5; 15 min x 2 after the base
    site, sensor, seq, ts_ms = plan.reading(47)
    assert (site, sensor, seq) == ("site0000", SENSOR_NAMES[5], 2)
    assert ts_ms == int(plan.base.timestamp() * 1000) + 2 * 900_000
    assert plan.index_of(site, sensor, seq) == 47
    assert plan.index_of("site0002", SENSOR_NAMES[6], 0) == 20


def test_event_time_starts_at_a_utc_midnight_three_years_back_and_a_day_is_96_steps() -> None:
    plan = make_plan([100], hold_s=10, sites=1, now=NOW)
    assert plan.base == datetime(2023, 11, 30, tzinfo=UTC)  # 2026-11-29 minus 1095 days
    assert plan.first_of_day(date(2023, 12, 1)) == 96 * 7
    assert plan.day_of(96 * 7 - 1) == date(2023, 11, 30) and plan.day_of(96 * 7) == date(2023, 12, 1)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 0.5) == 50.0 and percentile(values, 0.99) == 99.0 and percentile(values, 1.0) == 100.0
    assert percentile([3.0], 0.99) == 3.0
    assert math.isnan(percentile([], 0.5))


def test_a_step_is_sustained_with_a_bounded_backlog_and_most_rows_delivered() -> None:
    kept_up = Window(offered=1000, seconds=40, lag_start=2000, lag_end=5000, delivered=990)  # +3k of 40k = 7.5 %
    backlog = Window(offered=1000, seconds=40, lag_start=2000, lag_end=7000, delivered=990)  # +5k = 12.5 %
    short = Window(offered=1000, seconds=40, lag_start=2000, lag_end=2000, delivered=850)  # 85 % delivered
    assert kept_up.lag_growth == 0.075 and kept_up.sustained
    assert not backlog.sustained and not short.sustained


def test_the_saturation_point_is_the_last_sustained_step_before_the_first_that_is_not() -> None:
    def window(rate: float, ok: bool) -> Window:
        return Window(rate, 10, 0, 0, rate if ok else rate / 2)

    assert saturation([window(1000, True), window(5000, True), window(10000, False), window(20000, True)]) == 5000
    assert saturation([window(1000, False)]) == 0


def test_the_doc_section_of_a_run_is_replaced_and_other_runs_stay() -> None:
    page = "# Performance\n\ntext\n"
    once = replace_section(page, "first", "a")
    twice = replace_section(replace_section(once, "other", "b"), "second", "a")
    assert "first" not in twice and "second" in twice and "other" in twice and twice.startswith(page.strip())
    assert twice.count("<!-- bench-e2e:a:begin -->") == 1


def test_figures_become_valid_json_without_nan() -> None:
    text = json.dumps(finite({"p99": math.nan, "steps": [{"x": math.inf, "y": 1.5}], "t": (1, math.nan)}),
                      allow_nan=False)
    assert json.loads(text) == {"p99": None, "steps": [{"x": None, "y": 1.5}], "t": [1, None]}


def test_the_producer_sends_each_reading_as_reading_encode_writes_it_keyed_by_its_site() -> None:
    # The paced producer's fast encoder against the reference encoder, Reading.encode, over three days of a
    # 20-site plan (every device, steps across midnights) and a few readings far into a long run.
    plan = make_plan([1000, 5000], hold_s=60, sites=20, now=NOW)
    encode = PlanEncoder(plan)
    indices = [*range(3 * 96 * plan.devices), 10_000_000, 10_000_001, 10_000_139]
    for i in indices:
        site, sensor, seq, ts_ms = plan.reading(i)
        ts = datetime.fromtimestamp(ts_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        expected = Reading(site, sensor, ts, value_of(sensor), SENSORS[sensor].unit, seq).encode()
        assert encode(i) == (expected, site.encode()), i


def test_the_producers_messages_are_valid_readings_with_the_plans_identity() -> None:
    plan = make_plan([100], hold_s=10, sites=2, now=NOW)
    value, key = PlanEncoder(plan)(47)  # step 2, device 5 of 14: site0000's 6th sensor (index 47 = 3 * 14 + 5)
    assert key == b"site0000"
    reading = decode_reading(value)
    assert (reading.site, reading.sensor, reading.seq) == ("site0000", SENSOR_NAMES[5], 3)
    assert reading.ts == "2023-11-30T00:45:00Z"  # the base (2023-11-30 00:00 UTC) + 3 x 15 min
    assert reading.value == value_of(SENSOR_NAMES[5]) and reading.unit == SENSORS[SENSOR_NAMES[5]].unit


class FakeTable:
    """FAKE HBase table: a set of row keys, recording every batch of keys looked up."""

    def __init__(self) -> None:
        self.rows: set[bytes] = set()
        self.lookups: list[list[bytes]] = []

    def present(self, keys: Iterable[bytes]) -> set[bytes]:
        batch = list(keys)
        self.lookups.append(batch)
        return {k for k in batch if k in self.rows}


def test_the_prober_looks_up_only_each_sites_oldest_sample_until_it_is_readable() -> None:
    probes, table = HeadProbes(give_up_s=180.0), FakeTable()
    for i, (site, due) in enumerate([("a", 0.0), ("a", 1.0), ("a", 2.0), ("b", 0.5)]):
        probes.add(site, f"{site}{i}".encode(), i, due)
    assert probes.poll(table.present, lambda: 3.0) == {}
    assert table.lookups == [[b"a0", b"b3"]]  # one key per site, however many are pending
    table.rows |= {b"a0", b"a1", b"b3"}
    # a0 and b3 found, then a1 (a's next) in the same poll; a2 is not there, so the poll ends
    assert probes.poll(table.present, lambda: 4.0) == {0: 4.0, 1: 3.0, 3: 3.5}
    assert table.lookups[1:] == [[b"a0", b"b3"], [b"a1"], [b"a2"]]


def test_a_sample_never_readable_is_given_up_and_its_site_goes_on() -> None:
    probes, table = HeadProbes(give_up_s=10.0), FakeTable()
    probes.add("a", b"lost", 0, 0.0)
    probes.add("a", b"kept", 1, 1.0)
    table.rows.add(b"kept")
    assert probes.poll(table.present, lambda: 10.0) == {}  # 10 s after due: not yet given up
    assert probes.poll(table.present, lambda: 10.5) == {1: 9.5}
    assert probes.missing == 1 and table.lookups == [[b"lost"], [b"lost"], [b"kept"]]


def test_the_baseline_is_the_round_with_the_median_rate_and_keeps_every_rounds_rate() -> None:
    rounds = [{"rate": 150.0, "produce_s": 1.0}, {"rate": 90.0, "produce_s": 2.0}, {"rate": 120.0, "produce_s": 3.0}]
    assert median_baseline(rounds) == {"rate": 120.0, "produce_s": 3.0, "rounds": [150.0, 90.0, 120.0]}
    assert median_baseline(rounds[:2])["rate"] == 150.0  # an even count: the upper middle one


def test_the_ratio_uses_the_higher_of_the_baselines_before_and_after_the_load_and_keeps_both() -> None:
    cold = {"rate": 100.0, "rounds": [90.0, 100.0, 110.0]}
    warm = {"rate": 140.0, "rounds": [130.0, 140.0, 150.0]}
    after_higher = higher_baseline(cold, warm)
    assert after_higher["rate"] == 140.0 and after_higher["rounds"] == [130.0, 140.0, 150.0]
    assert after_higher["before"] is cold and after_higher["after"] is warm
    before_higher = higher_baseline(warm, cold)
    assert before_higher["rate"] == 140.0 and before_higher["before"] is warm and before_higher["after"] is cold
