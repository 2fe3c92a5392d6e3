"""Ranges and shapes of every sensor, read from the encoded messages of a simulated year (pure, no Kafka)."""

from __future__ import annotations

import itertools
import json
import statistics
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from iot_simulators.encoding import Encoder, site_id
from iot_simulators.engine import Simulation
from iot_simulators.late import parse_rules
from iot_simulators.timeline import Timeline
from iotcommon import days

TZ = ZoneInfo("Europe/Athens")
START = datetime(2020, 1, 1, tzinfo=TZ)
YEAR_STEPS = 366 * 96 + 1  # 2020 is a leap year; step 0 is 2020-01-01 00:00, the last one 2021-01-01 00:00


def simulate(steps: int, sites: int = 2, seed: int = 7, late: tuple[str, ...] = ("20:2d", "120:10d"),
             start: datetime = START) -> list[dict]:
    sim = Simulation(Timeline(start, TZ), list(range(1, sites + 1)), seed, parse_rules(late))
    enc = Encoder([site_id(n) for n in sim.site_numbers])
    msgs = enc.encode_all(sim.run(steps)) + enc.encode_blocks(sim.drain())
    out = []
    for key, payload in msgs:
        m = json.loads(payload)
        assert key.decode() == m["site"]  # the producer contract: key = site
        m["t"] = datetime.fromisoformat(m["ts"])
        out.append(m)
    return out


@pytest.fixture(scope="module")
def year() -> dict[str, list[dict]]:
    by_sensor: dict[str, list[dict]] = defaultdict(list)
    for m in simulate(YEAR_STEPS):
        by_sensor[m["sensor"]].append(m)
    return by_sensor


def local(m: dict) -> datetime:
    return m["t"].astimezone(TZ)


def test_every_sensor_reports_with_its_unit(year: dict[str, list[dict]]) -> None:
    units = {"TH1": "C", "TH2": "C", "HVAC1": "Wh", "HVAC2": "Wh", "MiAC1": "Wh", "MiAC2": "Wh", "W1": "l",
             "Etot": "Wh", "Wtot": "l", "Mov1": "count"}
    assert set(year) == set(units)
    for sensor, msgs in year.items():
        assert {m["unit"] for m in msgs} == {units[sensor]}
        assert {m["site"] for m in msgs} == {"site-00001", "site-00002"}


def test_quarter_sensors_report_every_15_minutes_after_the_start(year: dict[str, list[dict]]) -> None:
    for sensor in ("TH1", "TH2", "HVAC1", "HVAC2", "MiAC1", "MiAC2", "W1"):
        stamps = sorted(m["t"] for m in year[sensor] if m["site"] == "site-00001")
        assert stamps[0] == START + timedelta(minutes=15)
        assert stamps[-1] == datetime(2021, 1, 1, tzinfo=TZ)
        assert len(stamps) == 366 * 96
        assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(stamps))


def test_temperature_stays_in_12_to_35_and_follows_the_day_and_the_seasons(year: dict[str, list[dict]]) -> None:
    for sensor in ("TH1", "TH2"):
        values = [m["value"] for m in year[sensor]]
        assert min(values) >= 12.0 and max(values) <= 35.0
        assert min(values) < 13.0 and max(values) > 33.0  # the whole range is used (winter nights, summer days)
    th = year["TH1"]
    jan = statistics.mean(m["value"] for m in th if local(m).month == 1)
    jul = statistics.mean(m["value"] for m in th if local(m).month == 7)
    assert jul - jan > 10
    # daily low around 06:00, peak around 16:00
    at6 = statistics.mean(m["value"] for m in th if (local(m).hour, local(m).minute) == (6, 0))
    at16 = statistics.mean(m["value"] for m in th if (local(m).hour, local(m).minute) == (16, 0))
    assert at16 - at6 > 5
    # both sensors share the building's curve, each with its own noise of at most 0.5
    th2 = {(m["site"], m["ts"]): m["value"] for m in year["TH2"]}
    diffs = [abs(m["value"] - th2[(m["site"], m["ts"])]) for m in th]
    assert max(diffs) <= 1.0 + 1e-9
    assert statistics.mean(diffs) > 0.1


def _hvac_factor(t: float) -> float:
    if t > 35 or t < 12:
        return 3.0
    if t > 25 or t < 16:
        return 2.0
    return 1.0


@pytest.mark.parametrize(("sensor", "multiplier"), [("HVAC1", 1), ("HVAC2", 2)])
def test_hvac_follows_the_temperature(year: dict[str, list[dict]], sensor: str, multiplier: int) -> None:
    th1 = {(m["site"], m["ts"]): m["value"] for m in year["TH1"]}
    idle_near_comfort = near_comfort = 0
    for m in year[sensor]:
        assert 0.0 <= m["value"] <= 100.0 * multiplier
        t = th1[(m["site"], m["ts"])]
        if abs(t - 20) < 3:
            near_comfort += 1
            idle_near_comfort += m["value"] == 0
        if m["value"] == 0 and abs(t - 20) < 3.0005:  # idle is allowed only near 20 °C (TH1 is rounded on the wire)
            continue
        # TH1 on the wire is rounded to 3 decimals: allow for that, also in which band of f(T) it falls
        expected = [_hvac_factor(t + d) * multiplier * abs(t - 20) * 2 + 20 for d in (-0.0005, 0.0005)]
        assert min(abs(m["value"] - e) for e in expected) <= 0.5 + 0.01 * multiplier
    assert 0.6 < idle_near_comfort / near_comfort < 0.73  # idle two thirds of the time near 20 °C


@pytest.mark.parametrize(("sensor", "top", "first_full", "last_full"),
                         [("MiAC1", 150.0, (19, 15), (0, 0)), ("MiAC2", 200.0, (13, 15), (16, 0))])
def test_appliances_run_at_full_power_during_their_hours(
        year: dict[str, list[dict]], sensor: str, top: float, first_full: tuple[int, int],
        last_full: tuple[int, int]) -> None:
    full_quarters = Counter()
    for m in year[sensor]:
        assert 0.0 <= m["value"] <= top
        lt = local(m)
        start_of_quarter = lt - timedelta(minutes=15)
        full_hours = range(19, 24) if sensor == "MiAC1" else range(13, 16)
        if start_of_quarter.hour in full_hours:
            assert m["value"] == top, (m, first_full, last_full)
            full_quarters[(m["site"], days.day_of(m["t"], TZ))] += 1
    assert set(full_quarters.values()) == {20 if sensor == "MiAC1" else 12}
    off_hours = [m["value"] for m in year[sensor] if m["value"] != top]
    assert top * 0.4 < statistics.mean(off_hours) < top * 0.6  # U(0, top) outside the full-power hours


def test_water_is_never_negative_and_peaks_in_the_morning(year: dict[str, list[dict]]) -> None:
    w1 = year["W1"]
    assert min(m["value"] for m in w1) >= 0.0
    at3 = statistics.mean(m["value"] for m in w1 if local(m).hour == 3)
    at7 = statistics.mean(m["value"] for m in w1 if local(m).hour == 7)
    assert at7 > at3 + 0.3
    daily: Counter[tuple[str, date]] = Counter()
    for m in w1:
        daily[(m["site"], days.day_of(m["t"], TZ))] += m["value"]
    sums = list(daily.values())
    # the seed's curve: 3*(N(7,2.1)+N(23,2.5)+N(16,5)) + 0.18 summed over 96 quarters is ~48 l
    assert 40 < statistics.mean(sums) < 55


def test_cumulative_meters_report_at_local_midnight_and_grow_by_a_day(year: dict[str, list[dict]]) -> None:
    for sensor, base, per_hour, jitter in (("Etot", 1500.8, 2600.0, 1000.0), ("Wtot", 1000.0, 110 / 24, 10.0)):
        for site in ("site-00001", "site-00002"):
            msgs = sorted((m for m in year[sensor] if m["site"] == site), key=lambda m: m["t"])
            assert len(msgs) == 367  # 2020-01-01 00:00 (base) .. 2021-01-01 00:00
            assert [m["seq"] for m in msgs] == list(range(367))
            assert msgs[0]["value"] == base
            for prev, cur in itertools.pairwise(msgs):
                lt = local(cur)
                assert (lt.hour, lt.minute, lt.second) == (0, 0, 0)
                closed = days.day_of(cur["t"], TZ)
                hours = days.day_length(closed, TZ).total_seconds() / 3600
                assert abs(cur["value"] - prev["value"] - per_hour * hours) <= jitter + 0.002


def test_motion_has_4_or_5_events_strictly_inside_each_day(year: dict[str, list[dict]]) -> None:
    per_day: Counter[tuple[str, date]] = Counter()
    for m in year["Mov1"]:
        assert m["value"] == 1
        lt = local(m)
        assert (lt.hour, lt.minute, lt.second) != (0, 0, 0)  # never on the midnight that belongs to the day before
        per_day[(m["site"], days.day_of(m["t"], TZ))] += 1
    assert set(per_day.values()) == {4, 5}
    assert len(per_day) == 2 * 366
    for site in ("site-00001", "site-00002"):
        seqs = [m["seq"] for m in sorted(year["Mov1"], key=lambda m: m["t"]) if m["site"] == site]
        assert seqs == list(range(len(seqs)))


@pytest.mark.parametrize(("day", "quarters"), [(date(2020, 3, 29), 92), (date(2020, 10, 25), 100),
                                               (date(2020, 6, 1), 96)])
def test_dst_days_have_92_or_100_quarter_readings(year: dict[str, list[dict]], day: date, quarters: int) -> None:
    for sensor in ("TH1", "TH2", "HVAC1", "HVAC2", "MiAC1", "MiAC2", "W1"):
        n = sum(1 for m in year[sensor] if m["site"] == "site-00001" and days.day_of(m["t"], TZ) == day)
        assert n == quarters, sensor
    # the day's readings are stamped 00:15 .. 24:00 local
    stamps = sorted(m["t"] for m in year["TH1"] if m["site"] == "site-00001" and days.day_of(m["t"], TZ) == day)
    assert stamps[0].astimezone(TZ).time().isoformat() == "00:15:00"
    assert stamps[-1].astimezone(TZ) == datetime.combine(day + timedelta(days=1), datetime.min.time(), TZ)


def test_dst_in_another_zone() -> None:
    tz = ZoneInfo("America/New_York")  # DST changes at 02:00 local, in March and November
    sim = Simulation(Timeline(datetime(2021, 3, 13, tzinfo=tz), tz), [1], 3)
    counts: Counter[date] = Counter()
    for out in sim.run(4 * 96 + 1):
        for block in out.blocks:
            if block.sensor == "TH1":
                counts[days.day_of(datetime.fromisoformat(block.ts).astimezone(UTC), tz)] += 1
    assert counts[date(2021, 3, 14)] == 92
    assert counts[date(2021, 3, 13)] == 96
