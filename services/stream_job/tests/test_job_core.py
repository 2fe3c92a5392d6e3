"""Unit tests of the pure aggregation core (no Flink, no Kafka). A tiny harness plays Flink's role: it fires the
event-time timers the core registers when the watermark passes them. Expected values are worked out by hand."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from stream_job.core import DayAggregator, DictStore, Output, ts_ms_of

ATHENS = ZoneInfo("Europe/Athens")
DAY_MS = 86_400_000
UNITS = {"TH1": "C", "TH2": "C", "HVAC1": "Wh", "HVAC2": "Wh", "MiAC1": "Wh", "MiAC2": "Wh", "W1": "l",
         "Etot": "Wh", "Wtot": "l", "Mov1": "count"}


class Harness:
    """One site's operator: readings with the current watermark, timers fired in order as the watermark advances."""

    def __init__(self, lateness_ms: int = 2 * DAY_MS) -> None:
        self.core = DayAggregator(ATHENS, lateness_ms, clock=lambda: datetime(2030, 1, 1, tzinfo=UTC))
        self.store = DictStore()
        self.timers: set[int] = set()
        self.watermark = -(2**63)
        self.out: list[Output] = []
        self.seq = 0

    def reading(self, sensor: str, ts: str, value: float, seq: int | None = None, site: str = "S1") -> None:
        if seq is None:
            self.seq += 1
            seq = self.seq
        out, timers = self.core.on_reading(self.store, site, sensor, ts, ts_ms_of(ts), value, seq, self.watermark)
        self.out += out
        self.timers.update(timers)

    def advance(self, ts: str) -> None:
        self.watermark = max(self.watermark, ts_ms_of(ts))
        for t in sorted(t for t in self.timers if t <= self.watermark):
            self.timers.discard(t)
            self.out += self.core.on_timer(self.store, "S1", t)

    def aggregates(self) -> list[dict[str, Any]]:
        return [json.loads(o.value) for o in self.out if o.topic == "aggregates"]

    def latest(self) -> dict[str, dict[str, Any]]:
        best: dict[str, dict[str, Any]] = {}
        for agg in self.aggregates():
            key = f"{agg['site']}/{agg['name']}/{agg['day']}"
            if key not in best or agg["revision"] > best[key]["revision"]:
                best[key] = agg
        return best

    def late(self) -> list[dict[str, Any]]:
        return [json.loads(o.value) for o in self.out if o.topic == "late"]


def utc(local: str) -> str:
    """'2020-01-02 00:00' Athens local time -> RFC 3339 UTC."""
    ts = datetime.fromisoformat(local).replace(tzinfo=ATHENS).astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_a_reading_at_local_midnight_closes_the_previous_day() -> None:
    h = Harness()
    h.reading("TH1", utc("2020-01-01 23:45"), 10.0)
    h.reading("TH1", utc("2020-01-02 00:00"), 20.0)  # belongs to Jan 1
    h.reading("TH1", "2020-01-01T22:00:00.001Z", 99.0)  # 00:00:00.001 local: Jan 2
    h.advance(utc("2020-01-02 00:00"))
    got = h.latest()
    assert got["S1/AggDay[TH1]/2020-01-01"]["value"] == 15.0
    assert got["S1/AggDay[TH1]/2020-01-01"]["count"] == 2
    assert got["S1/AggDay[TH1]/2020-01-01"]["window_start"] == "2019-12-31T22:00:00Z"
    assert got["S1/AggDay[TH1]/2020-01-01"]["window_end"] == "2020-01-01T22:00:00Z"
    assert "S1/AggDay[TH1]/2020-01-02" not in got


def test_nothing_is_emitted_before_the_watermark_reaches_the_day_end() -> None:
    h = Harness()
    h.reading("HVAC1", utc("2020-01-01 12:00"), 5.0)
    h.advance(utc("2020-01-01 23:59"))
    assert h.aggregates() == []
    h.advance(utc("2020-01-02 00:00"))
    assert [a["revision"] for a in h.aggregates()] == [1]


@pytest.mark.parametrize(("day", "quarters", "hours"), [("2020-03-29", 92, 23), ("2020-10-25", 100, 25),
                                                         ("2020-06-01", 96, 24)])
def test_dst_days_hold_their_real_number_of_quarters(day: str, quarters: int, hours: int) -> None:
    h = Harness()
    start = datetime.fromisoformat(day).replace(tzinfo=ATHENS).astimezone(UTC)
    end = (datetime.fromisoformat(day) + timedelta(days=1)).replace(tzinfo=ATHENS).astimezone(UTC)
    assert end - start == timedelta(hours=hours)
    ts = start + timedelta(minutes=15)
    while ts <= end:  # 00:15 ... next 00:00, stepping in UTC
        h.reading("W1", ts.strftime("%Y-%m-%dT%H:%M:%SZ"), 0.5)
        ts += timedelta(minutes=15)
    h.advance(end.strftime("%Y-%m-%dT%H:%M:%SZ"))
    agg = h.latest()[f"S1/AggDay[W1]/{day}"]
    assert (agg["count"], agg["value"]) == (quarters, quarters * 0.5)


def test_duplicates_count_once_but_another_seq_is_another_reading() -> None:
    h = Harness()
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=1)
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=1)
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=2)
    h.advance(utc("2020-01-02 00:00"))
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=2)  # replayed after the first emission: no revision
    agg = h.latest()["S1/AggDay[HVAC2]/2020-01-01"]
    assert (agg["value"], agg["count"], agg["revision"]) == (14.0, 2, 1)


def test_late_within_lateness_revises_and_beyond_goes_to_late() -> None:
    h = Harness()
    h.reading("MiAC1", utc("2020-01-01 10:00"), 100.0)
    h.reading("MiAC1", utc("2020-01-02 10:00"), 1.0)
    h.advance(utc("2020-01-02 01:00"))
    h.reading("MiAC1", utc("2020-01-01 23:00"), 50.0)  # 2 h late: revision 2
    h.advance(utc("2020-01-04 00:00"))  # Jan 1 + 2 days: Jan 1 is now beyond its lateness
    h.reading("MiAC1", utc("2020-01-01 23:30"), 25.0)  # beyond: late topic
    h.reading("MiAC1", utc("2020-01-02 23:30"), 2.0)  # Jan 2 still within lateness: revision 2
    revisions = [(a["day"], a["revision"], a["value"]) for a in h.aggregates()]
    assert revisions == [("2020-01-01", 1, 100.0), ("2020-01-01", 2, 150.0), ("2020-01-02", 1, 1.0),
                         ("2020-01-02", 2, 3.0)]
    late = h.late()
    assert len(late) == 1
    assert late[0]["reason"] == "beyond-allowed-lateness"
    assert late[0]["day"] == "2020-01-01"
    assert late[0]["late_by_ms"] == 0  # the watermark sits exactly on end + lateness
    assert late[0]["reading"] == {"v": 1, "site": "S1", "sensor": "MiAC1", "ts": utc("2020-01-01 23:30"),
                                  "value": 25.0, "unit": "Wh", "seq": h.seq - 1}
    assert not any(k.endswith("|2020-01-01") or "|2020-01-01|" in k for k in h.store.data)  # state of Jan 1 dropped


def test_a_reading_ten_days_late_reports_how_late() -> None:
    h = Harness()
    h.reading("W1", utc("2020-01-20 12:00"), 1.0)
    h.advance(utc("2020-01-20 12:00"))
    h.reading("W1", utc("2020-01-10 12:00"), 1.0)
    (late,) = h.late()
    # Jan 10 ends at Jan 11 00:00 local; + 2 days = Jan 13 00:00; the watermark is Jan 20 12:00: 7.5 days later
    assert late["late_by_ms"] == int(7.5 * DAY_MS)


def test_mean_sum_and_motion_count() -> None:
    h = Harness()
    for i, v in enumerate((20.0, 21.0, 25.0)):
        h.reading("TH2", utc(f"2020-01-01 0{i + 1}:00"), v)
    for minute in ("03:17", "11:02", "00:00"):  # the 00:00 event is the next midnight's: counts for Jan 1? no: Jan 0
        h.reading("Mov1", utc(f"2020-01-01 {minute}"), 1.0)
    h.advance(utc("2020-01-02 00:00"))
    got = h.latest()
    assert got["S1/AggDay[TH2]/2020-01-01"]["value"] == pytest.approx(22.0)
    assert got["S1/AggDayMov[Mov1]/2020-01-01"]["value"] == 2.0  # 00:00 on Jan 1 closes Dec 31
    assert got["S1/AggDayMov[Mov1]/2019-12-31"]["value"] == 1.0
    assert got["S1/AggDayMov[Mov1]/2019-12-31"]["unit"] == "count"


def test_diff_and_rest_by_event_time() -> None:
    h = Harness()
    h.reading("Etot", utc("2020-01-03 00:00"), 1600.0)  # end of Jan 2, arrives before Jan 1's
    h.reading("Etot", utc("2020-01-02 00:00"), 1000.0)  # end of Jan 1
    h.reading("Etot", utc("2020-01-01 00:00"), 900.0)  # end of Dec 31
    for sensor, value in (("HVAC1", 100.0), ("HVAC2", 50.0), ("MiAC1", 25.0), ("MiAC2", 5.0)):
        h.reading(sensor, utc("2020-01-02 12:00"), value)
    h.reading("Wtot", utc("2020-01-03 00:00"), 1110.0)
    h.reading("Wtot", utc("2020-01-02 00:00"), 1000.0)
    h.reading("W1", utc("2020-01-02 08:00"), 40.0)
    h.advance(utc("2020-01-03 00:00"))
    got = h.latest()
    assert got["S1/AggDayDiff[Etot]/2020-01-02"]["value"] == 600.0
    assert got["S1/AggDayRest[Etot]/2020-01-02"]["value"] == 600.0 - 180.0
    assert got["S1/AggDayDiff[Etot]/2020-01-01"]["value"] == 100.0
    assert got["S1/AggDayRest[Etot]/2020-01-01"]["value"] == 100.0  # no parts that day: they contribute 0
    assert got["S1/AggDayDiff[Wtot]/2020-01-02"]["value"] == 110.0
    assert got["S1/AggDayRest[Wtot]/2020-01-02"]["value"] == 70.0
    assert "S1/AggDayDiff[Etot]/2019-12-31" not in got  # no reading at the end of Dec 30: no Diff
    assert "S1/AggDayDiff[Wtot]/2020-01-01" not in got


def test_a_late_end_of_day_reading_revises_the_next_days_diff() -> None:
    h = Harness(lateness_ms=3 * DAY_MS)
    h.reading("Etot", utc("2020-01-02 00:00"), 1000.0)
    h.reading("Etot", utc("2020-01-03 00:00"), 1500.0)
    h.advance(utc("2020-01-03 00:00"))
    assert "S1/AggDayDiff[Etot]/2020-01-02" in h.latest()
    h.reading("Etot", utc("2020-01-01 00:00"), 400.0)  # Dec 31 unknown until now: Jan 1 gets its first Diff
    got = h.latest()
    assert got["S1/AggDayDiff[Etot]/2020-01-01"]["value"] == 600.0
    assert got["S1/AggDayDiff[Etot]/2020-01-01"]["revision"] == 1
    # A later reading within Jan 1 (by event time) moves Jan 1's end value: Jan 1 and Jan 2 are revised.
    h.reading("Etot", "2020-01-01T22:00:00Z", 1100.0, seq=999)  # same instant as the first one, higher seq
    got = h.latest()
    assert got["S1/AggDayDiff[Etot]/2020-01-01"]["value"] == 700.0
    assert got["S1/AggDayDiff[Etot]/2020-01-02"]["value"] == 400.0
    assert got["S1/AggDayDiff[Etot]/2020-01-02"]["revision"] == 2


def test_arrival_order_does_not_matter() -> None:
    readings = [("HVAC1", utc(f"2020-01-01 {h:02d}:30"), float(h) * 0.1) for h in range(24)]
    readings += [("Etot", utc("2020-01-01 00:00"), 10.0), ("Etot", utc("2020-01-02 00:00"), 25.0)]
    results = []
    for order in (readings, readings[::-1]):
        h = Harness()
        for sensor, ts, value in order:
            h.reading(sensor, ts, value, seq=0)
        h.advance(utc("2020-01-02 00:00"))
        results.append({k: (v["value"], v["count"]) for k, v in h.latest().items()})
    assert results[0] == results[1]
    assert results[0]["S1/AggDayRest[Etot]/2020-01-01"][0] == pytest.approx(15.0 - sum(h * 0.1 for h in range(24)))
