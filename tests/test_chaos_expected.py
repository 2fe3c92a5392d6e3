"""Unit tests (no services) of the chaos run's plain-Python expectation (bench/chaos_expected.py) and plan, on
hand-made inputs whose results are worked out here by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

import chaos_expected as ex
from chaos_plan import COMPONENTS, Plan, kill_schedule, malformed_messages

ATHENS = ZoneInfo("Europe/Athens")  # UTC+2 in January
DAY_MS = 86_400_000


def msg(site: str, sensor: str, ts: str, value: float, seq: int) -> bytes:
    return json.dumps({"v": 1, "site": site, "sensor": sensor, "ts": ts, "value": value,
                       "unit": ex.UNITS[sensor], "seq": seq}, separators=(",", ":")).encode()


def test_a_reading_at_local_midnight_closes_the_previous_day() -> None:
    assert ex.day_of(ex._ms("2020-01-01T22:00:00Z") or 0, ATHENS).isoformat() == "2020-01-01"  # 00:00 on the 2nd
    assert ex.day_of(ex._ms("2020-01-01T22:15:00Z") or 0, ATHENS).isoformat() == "2020-01-02"


def test_lateness_replays_dead_letters_and_aggregates() -> None:
    inputs = [
        msg("s1", "Etot", "2020-01-01T22:00:00Z", 100.0, 0),  # closes 1 Jan
        msg("s1", "HVAC1", "2020-01-02T08:00:00Z", 10.0, 0),
        msg("s1", "HVAC1", "2020-01-02T08:00:00Z", 10.0, 0),  # a replay: counted once
        b"not json",
        msg("s1", "TH1", "2020-01-02T09:00:00Z", 20.0, 0),
        msg("s1", "TH1", "2020-01-02T10:00:00Z", 22.0, 1),
        msg("s1", "Etot", "2020-01-02T22:00:00Z", 130.0, 1),  # closes 2 Jan: Diff 30, Rest 30 - 10
        msg("s1", "W1", "2020-01-06T10:00:00Z", 5.0, 7),  # moves the clock past 2 Jan + 2 days
        msg("s1", "HVAC1", "2020-01-02T09:00:00Z", 99.0, 1),  # late: never in an aggregate
        msg("s1", "TH1", "2020-01-05T10:00:00Z", 1.0, 2),  # within the lateness of 5 Jan
    ]
    want = ex.expected(enumerate(inputs), ATHENS, 2 * DAY_MS, 1000)
    assert want.deadletters == {3}
    assert want.valid_messages == 9
    assert len(want.raw) == 8  # the replay is the same reading
    assert want.late == {("s1", "HVAC1", ex._ms("2020-01-02T09:00:00Z"), 1)}
    assert want.aggregates == {
        ("s1", "AggDay[HVAC1]", "2020-01-02"): (10.0, 1),
        ("s1", "AggDay[TH1]", "2020-01-02"): (21.0, 2),
        ("s1", "AggDayDiff[Etot]", "2020-01-02"): (30.0, 2),
        ("s1", "AggDayRest[Etot]", "2020-01-02"): (20.0, 3),
        ("s1", "AggDay[TH1]", "2020-01-05"): (1.0, 1),
    }  # 1 Jan has only its closing meter (no Diff without 31 Dec); 6 Jan is still open


def test_aggregate_differences_name_what_differs() -> None:
    want = {("s", "AggDay[TH1]", "2020-01-02"): (21.0, 2)}
    assert ex.aggregate_differences({("s", "AggDay[TH1]", "2020-01-02"): (21.0 + 1e-12, 2)}, want) == []
    assert ex.aggregate_differences({}, want) == ["missing ('s', 'AggDay[TH1]', '2020-01-02')"]
    assert ex.aggregate_differences({("s", "AggDay[TH1]", "2020-01-02"): (21.0, 3)}, want) != []


def test_the_plan_kills_every_component_once_the_simulator_first_and_is_seeded() -> None:
    plan = Plan(seed=3)
    kills = kill_schedule(plan)
    assert sorted(k.component for k in kills) == sorted(COMPONENTS)
    assert kills[0].component == "simulator" and kills[0].at_fraction <= 0.08
    assert [k.at_fraction for k in kills] == sorted(k.at_fraction for k in kills)
    assert kills == kill_schedule(Plan(seed=3)) and kills != kill_schedule(Plan(seed=4))
    bad = malformed_messages(plan)
    assert len(bad) == plan.malformed and all(ex.parse_reading(m) is None for m in bad)
