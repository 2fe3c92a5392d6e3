"""Unit tests of the pure aggregation core (no Flink, no Kafka). A tiny harness plays Flink's role: it gives each
reading its site's clock and sequence number (as the SQL upstream does), and fires the event-time timers the core
registers when the watermark passes them. Expected values are worked out by hand."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from java_core import JavaCore, JavaStore, compile_pure

from iotcommon.days import ts_to_ms
from iotcommon.zones import SiteZones
from stream_job.core import DayAggregator, DictStore, Output, ident

ATHENS = ZoneInfo("Europe/Athens")
DAY_MS = 86_400_000
UNITS = {"TH1": "C", "TH2": "C", "HVAC1": "Wh", "HVAC2": "Wh", "MiAC1": "Wh", "MiAC2": "Wh", "W1": "l",
         "Etot": "Wh", "Wtot": "l", "Mov1": "count"}


EMITTED_AT = datetime(2030, 1, 1, tzinfo=UTC)


class Impl:
    """Which day logic a test runs: the Python reference core or the Java port the job runs (``java_core``)."""

    def __init__(self, name: str, classes: Path | None) -> None:
        self.name = name
        self.classes = classes
        self.started: list[JavaCore] = []

    def core(self, zones: SiteZones, lateness_ms: int) -> Any:
        if self.classes is None:
            return DayAggregator(zones, lateness_ms, clock=lambda: EMITTED_AT)
        core = JavaCore(self.classes, zones, lateness_ms, EMITTED_AT)
        self.started.append(core)
        return core

    def store(self, core: Any, site: str) -> Any:
        return JavaStore(core, site) if isinstance(core, JavaCore) else DictStore()


@pytest.fixture(scope="session")
def java_day_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_pure(tmp_path_factory.mktemp("day-logic"))


@pytest.fixture(params=["python", "java"])
def impl(request: pytest.FixtureRequest) -> Iterator[Impl]:
    chosen = Impl(request.param, request.getfixturevalue("java_day_classes") if request.param == "java" else None)
    yield chosen
    for core in chosen.started:
        core.close()


class Harness:
    """One bucket's operator: readings with their site's clock (the newest event time of the site so far, itself
    included) and sequence number, the current watermark, timers fired in order as the watermark advances."""

    def __init__(self, lateness_ms: int = 2 * DAY_MS, zones: SiteZones | None = None,
                 impl: Impl | None = None) -> None:
        self.impl = impl or Impl("python", None)
        self.core = self.impl.core(zones or SiteZones("Europe/Athens"), lateness_ms)
        self.stores: dict[str, Any] = {}
        self.timers: set[int] = set()
        self.watermark = -(2**63)
        self.out: list[Output] = []
        self.seq = 0
        self.clocks: dict[str, int] = {}
        self.sseqs: dict[str, int] = {}

    @property
    def store(self) -> Any:
        return self.store_of("S1")

    def store_of(self, site: str) -> Any:
        if site not in self.stores:
            self.stores[site] = self.impl.store(self.core, site)
        return self.stores[site]

    def stamp(self, site: str, ts_ms: int) -> tuple[int, int]:
        """The (clock, sseq) the SQL upstream gives the next message of the site."""
        self.clocks[site] = max(self.clocks.get(site, 0), ts_ms)
        self.sseqs[site] = self.sseqs.get(site, 0) + 1
        return self.clocks[site], self.sseqs[site]

    def reading(self, sensor: str, ts: str, value: float, seq: int | None = None, site: str = "S1",
                stamp: tuple[int, int] | None = None) -> None:
        if seq is None:
            self.seq += 1
            seq = self.seq
        clock, sseq = stamp or self.stamp(site, ts_to_ms(ts))
        out, timers = self.core.on_reading(self.store_of(site), site, sensor, ts, ts_to_ms(ts), value, seq, clock,
                                           sseq, self.watermark)
        self.out += out
        self.timers.update(timers)

    def advance(self, ts: str) -> None:
        self.watermark = max(self.watermark, ts_to_ms(ts))
        for t in sorted(t for t in self.timers if t <= self.watermark):
            self.timers.discard(t)
            for site, store in self.stores.items():
                self.out += self.core.on_timer(store, site, t)

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


def test_a_reading_at_local_midnight_closes_the_previous_day(impl: Impl) -> None:
    h = Harness(impl=impl)
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


def test_nothing_is_emitted_before_the_watermark_reaches_the_day_end(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("HVAC1", utc("2020-01-01 12:00"), 5.0)
    h.advance(utc("2020-01-01 23:59"))
    assert h.aggregates() == []
    h.advance(utc("2020-01-02 00:00"))
    assert [a["revision"] for a in h.aggregates()] == [1]


@pytest.mark.parametrize(("day", "quarters", "hours"), [("2020-03-29", 92, 23), ("2020-10-25", 100, 25),
                                                         ("2020-06-01", 96, 24)])
def test_dst_days_hold_their_real_number_of_quarters(day: str, quarters: int, hours: int, impl: Impl) -> None:
    h = Harness(impl=impl)
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


def test_duplicates_count_once_but_another_seq_is_another_reading(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=1)
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=1)
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=2)
    h.advance(utc("2020-01-02 00:00"))
    h.reading("HVAC2", utc("2020-01-01 10:00"), 7.0, seq=2)  # replayed after the first emission: no revision
    agg = h.latest()["S1/AggDay[HVAC2]/2020-01-01"]
    assert (agg["value"], agg["count"], agg["revision"]) == (14.0, 2, 1)


LONGEST_DAY_MS = 25 * 3_600_000  # a local day with the clocks going back


@given(st.integers(-(2**45), 2**45), st.tuples(st.integers(1, LONGEST_DAY_MS), st.integers(0, 2**63 - 1)),
       st.tuples(st.integers(1, LONGEST_DAY_MS), st.integers(0, 2**63 - 1)))
def test_reading_identities_of_a_day_are_equal_only_for_the_same_time_and_seq(
        start: int, a: tuple[int, int], b: tuple[int, int]) -> None:
    """Within one day (start, start + 25 h]: ident equal <=> same (ts_ms, seq)."""
    assert (ident(start + a[0], a[1], start) == ident(start + b[0], b[1], start)) == (a == b)


def test_a_day_stored_by_an_older_job_still_counts_a_duplicate_once() -> None:
    """A checkpoint of the job before reading identities became ints holds (ts_ms, seq) tuples and no "v": restored,
    a replayed reading of that day still counts once, and a new one counts."""
    h = Harness()
    ten, eleven = utc("2020-01-01 10:00"), utc("2020-01-01 11:00")
    h.reading("HVAC2", ten, 7.0, seq=1)
    blob = h.store.data["D|2020-01-01"]
    acc, _ = blob["acc"]["HVAC2"]
    h.store.data["D|2020-01-01"] = {"acc": {"HVAC2": (acc, {(ts_to_ms(ten), 1)})}, "emitted": blob["emitted"]}
    h.reading("HVAC2", ten, 7.0, seq=1)  # the producer's retry, after the restore
    h.reading("HVAC2", eleven, 5.0, seq=2)
    h.advance(utc("2020-01-02 00:00"))
    agg = h.latest()["S1/AggDay[HVAC2]/2020-01-01"]
    assert (agg["value"], agg["count"]) == (12.0, 2)


def test_late_within_lateness_revises_and_beyond_goes_to_late(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("MiAC1", utc("2020-01-01 10:00"), 100.0)
    h.reading("MiAC1", utc("2020-01-02 10:00"), 1.0)
    h.advance(utc("2020-01-02 01:00"))
    h.reading("MiAC1", utc("2020-01-01 23:00"), 50.0)  # 2 h late: revision 2
    h.advance(utc("2020-01-04 00:00"))
    h.reading("TH1", utc("2020-01-04 00:00"), 20.0)  # the site's clock: Jan 1 + 2 days, Jan 1 beyond its lateness
    h.reading("MiAC1", utc("2020-01-01 23:30"), 25.0)  # beyond: late topic
    h.reading("MiAC1", utc("2020-01-02 23:30"), 2.0)  # Jan 2 still within lateness: revision 2
    revisions = [(a["day"], a["revision"], a["value"]) for a in h.aggregates() if a["sensor"] == "MiAC1"]
    assert revisions == [("2020-01-01", 1, 100.0), ("2020-01-01", 2, 150.0), ("2020-01-02", 1, 1.0),
                         ("2020-01-02", 2, 3.0)]
    late = h.late()
    assert len(late) == 1
    assert late[0]["reason"] == "beyond-allowed-lateness"
    assert late[0]["day"] == "2020-01-01"
    assert late[0]["late_by_ms"] == 0  # the site's clock sits exactly on end + lateness
    assert late[0]["reading"] == {"v": 1, "site": "S1", "sensor": "MiAC1", "ts": utc("2020-01-01 23:30"),
                                  "value": 25.0, "unit": "Wh", "seq": h.seq - 1}
    assert not any(k.endswith("|2020-01-01") or "|2020-01-01|" in k for k in h.store.data)  # state of Jan 1 dropped


def test_a_reading_ten_days_late_reports_how_late(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("W1", utc("2020-01-20 12:00"), 1.0)
    h.reading("W1", utc("2020-01-10 12:00"), 1.0)
    (late,) = h.late()
    # Jan 10 ends at Jan 11 00:00 local; + 2 days = Jan 13 00:00; the site's clock is Jan 20 12:00: 7.5 days later
    assert late["late_by_ms"] == int(7.5 * DAY_MS)


def test_mean_sum_and_motion_count(impl: Impl) -> None:
    h = Harness(impl=impl)
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


def test_diff_and_rest_by_event_time(impl: Impl) -> None:
    # the end of Dec 31 arrives when the site's clock is 2 days past it
    h = Harness(impl=impl, lateness_ms=3 * DAY_MS)
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


def test_a_late_end_of_day_reading_revises_the_next_days_diff(impl: Impl) -> None:
    h = Harness(impl=impl, lateness_ms=3 * DAY_MS)
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


def test_arrival_order_does_not_matter(impl: Impl) -> None:
    readings = [("HVAC1", utc(f"2020-01-01 {h:02d}:30"), float(h) * 0.1) for h in range(24)]
    readings += [("Etot", utc("2020-01-01 00:00"), 10.0), ("Etot", utc("2020-01-02 00:00"), 25.0)]
    results = []
    for order in (readings, readings[::-1]):
        h = Harness(impl=impl)
        for sensor, ts, value in order:
            h.reading(sensor, ts, value, seq=0)
        h.advance(utc("2020-01-02 00:00"))
        results.append({k: (v["value"], v["count"]) for k, v in h.latest().items()})
    assert results[0] == results[1]
    assert results[0]["S1/AggDayRest[Etot]/2020-01-01"][0] == pytest.approx(15.0 - sum(h * 0.1 for h in range(24)))


# -- the site's own clock decides; state goes only when no accepted reading can still come ------------------------


def test_the_verdict_follows_the_sites_own_clock_not_the_watermark(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("W1", utc("2020-01-01 12:00"), 1.0, site="OFF")
    h.reading("W1", utc("2020-01-10 12:00"), 1.0, site="ON")  # another site runs 9 days ahead
    h.advance(utc("2020-01-10 12:00"))
    h.reading("W1", utc("2020-01-01 18:00"), 2.0, site="OFF")  # its own backlog: the site's clock is Jan 1 12:00
    h.reading("W1", utc("2020-01-01 06:00"), 3.0, site="ON")  # 9 days behind its own site: late
    got = h.latest()
    assert (got["OFF/AggDay[W1]/2020-01-01"]["value"], got["OFF/AggDay[W1]/2020-01-01"]["count"]) == (3.0, 2)
    assert "ON/AggDay[W1]/2020-01-01" not in got
    assert [(x["reading"]["site"], x["day"]) for x in h.late()] == [("ON", "2020-01-01")]


def test_a_day_is_dropped_only_once_every_earlier_message_of_the_site_has_arrived(impl: Impl) -> None:
    h = Harness(impl=impl)
    first = h.stamp("S1", ts_to_ms(utc("2020-01-01 12:00")))
    in_flight = h.stamp("S1", ts_to_ms(utc("2020-01-01 13:00")))  # overtaken on the way (another path)
    ahead = h.stamp("S1", ts_to_ms(utc("2020-01-05 00:00")))  # Jan 1 + 2 days passed
    h.advance(utc("2020-01-04 23:00"))  # every partition is past Jan 1 + 2 days
    h.reading("HVAC1", utc("2020-01-01 12:00"), 10.0, stamp=first)
    h.reading("TH1", utc("2020-01-05 00:00"), 20.0, stamp=ahead)
    assert "D|2020-01-01" in h.store.data  # message 2 has not arrived: Jan 1 may still get a reading
    h.reading("HVAC1", utc("2020-01-01 13:00"), 5.0, stamp=in_flight)  # accepted: its clock was Jan 1 13:00
    assert "D|2020-01-01" not in h.store.data  # now nothing of Jan 1 can come any more
    assert h.late() == []
    got = h.latest()["S1/AggDay[HVAC1]/2020-01-01"]  # dropped only after its first emission, with both readings
    assert (got["value"], got["count"]) == (15.0, 2)


def test_a_dead_letter_of_the_site_fills_its_place_in_the_sequence(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("MiAC2", utc("2020-01-01 12:00"), 1.0)
    dead = h.stamp("S1", ts_to_ms(utc("2020-01-01 12:15")))
    h.reading("MiAC2", utc("2020-01-04 01:00"), 1.0)
    assert "D|2020-01-01" in h.store.data
    h.advance(utc("2020-01-04 01:00"))
    h.out += h.core.on_marker(h.store, "S1", *dead, h.watermark)
    assert "D|2020-01-01" not in h.store.data


def test_the_idle_limit_closes_days_the_sites_clock_passed_without_the_watermark(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("TH2", utc("2020-01-01 12:00"), 18.0)
    h.reading("TH2", utc("2020-01-02 00:15"), 19.0)
    closed = h.core.on_idle(h.store, "S1")  # the watermark is held back elsewhere (a silent partition)
    assert closed != []
    h.out += closed
    assert h.latest()["S1/AggDay[TH2]/2020-01-01"]["value"] == 18.0
    assert "S1/AggDay[TH2]/2020-01-02" not in h.latest()  # the site's clock has not passed Jan 2


def test_an_idle_site_is_forgotten_entirely(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("Etot", utc("2020-01-01 00:00"), 5.0)
    h.advance(utc("2020-01-04 00:00"))
    h.reading("Etot", utc("2020-01-04 00:00"), 9.0)  # Dec 31 dropped; its end value kept for the next Diff
    assert h.store.data
    h.core.forget(h.store)
    assert h.store.data == {}


def test_sites_in_other_zones_get_their_own_local_days(impl: Impl) -> None:
    h = Harness(impl=impl, zones=SiteZones("Europe/Athens", {"NY": "America/New_York"}))
    # 2020-01-02 03:00 UTC: Jan 2 05:00 in Athens, but Jan 1 22:00 in New York
    h.reading("HVAC1", "2020-01-02T03:00:00Z", 4.0, site="NY")
    h.reading("HVAC1", "2020-01-02T03:00:00Z", 6.0, site="S1")
    h.advance("2020-01-03T05:00:00Z")  # midnight of Jan 2 -> Jan 3 in New York
    got = h.latest()
    assert got["NY/AggDay[HVAC1]/2020-01-01"]["value"] == 4.0
    assert got["NY/AggDay[HVAC1]/2020-01-01"]["window_end"] == "2020-01-02T05:00:00Z"
    assert got["S1/AggDay[HVAC1]/2020-01-02"]["value"] == 6.0


def test_no_reading_makes_an_aggregate_non_finite(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("HVAC1", utc("2020-01-01 10:00"), 1.5e308)
    h.reading("HVAC1", utc("2020-01-01 11:00"), 1.5e308)  # the sum would be inf: kept out, reported
    h.reading("HVAC1", utc("2020-01-01 12:00"), 1.0)
    h.advance(utc("2020-01-02 00:00"))
    got = h.latest()["S1/AggDay[HVAC1]/2020-01-01"]
    assert (got["value"], got["count"]) == (1.5e308 + 1.0, 2)
    (late,) = h.late()
    assert (late["reason"], late["reading"]["ts"]) == ("aggregate-overflow", utc("2020-01-01 11:00"))
    assert late["late_by_ms"] == 0


def test_what_happened_is_counted_for_the_metrics(impl: Impl) -> None:
    h = Harness(impl=impl)
    h.reading("HVAC1", utc("2020-01-01 10:00"), 1.0)
    h.advance(utc("2020-01-02 00:00"))  # Jan 1 closed
    h.reading("HVAC1", utc("2020-01-01 11:00"), 1.0)  # a revision
    h.advance(utc("2020-01-04 00:00"))  # closes Jan 2 and Jan 3 (no readings: nothing to count)
    h.reading("HVAC1", utc("2020-01-04 00:00"), 1.0)  # the clock passes Jan 1 + 2 days: Jan 1 dropped
    h.reading("HVAC1", utc("2020-01-01 12:00"), 1.0)  # late
    # days closed: Jan 1 by the watermark, Jan 3 (the 00:00 reading) already closed when it was created
    assert h.core.counts == {"days_closed": 2, "revisions": 1, "days_dropped": 1, "late": 1}


def test_with_device_keys_a_site_has_one_substream_per_partition_and_each_must_pass(impl: Impl) -> None:
    h = Harness(impl=impl)
    ts_a, ts_b = utc("2020-01-01 12:00"), utc("2020-01-05 00:00")
    h.advance(ts_b)
    h.core.on_reading(h.store, "S1", "HVAC1", ts_a, ts_to_ms(ts_a), 1.0, 1, ts_to_ms(ts_a), 1, h.watermark,
                      part=0)
    h.core.on_reading(h.store, "S1", "HVAC2", ts_b, ts_to_ms(ts_b), 1.0, 1, ts_to_ms(ts_b), 1, h.watermark,
                      part=1)
    assert "D|2020-01-01" in h.store.data  # partition 0's substream is still on Jan 1: it may send more of it
    h.core.on_reading(h.store, "S1", "HVAC1", ts_b, ts_to_ms(ts_b), 1.0, 2, ts_to_ms(ts_b), 2, h.watermark,
                      part=0)
    assert "D|2020-01-01" not in h.store.data


def test_a_day_stays_while_the_watermark_says_another_partition_may_still_bring_it(impl: Impl) -> None:
    h = Harness(impl=impl)  # device keys: the site's substream on another partition may not have shown up yet
    h.reading("HVAC1", utc("2020-01-01 12:00"), 1.0)
    h.reading("HVAC1", utc("2020-01-05 00:00"), 1.0)
    assert "D|2020-01-01" in h.store.data  # the watermark is still before Jan 1 + 2 days
    h.advance(utc("2020-01-04 00:00"))  # every partition has passed Jan 1 + 2 days
    h.reading("HVAC1", utc("2020-01-05 00:15"), 1.0)
    assert "D|2020-01-01" not in h.store.data
