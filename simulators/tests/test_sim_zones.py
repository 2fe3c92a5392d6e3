"""Sites in several time zones (IOTPIPE_SITE_ZONES): each site's days are stamped in its own zone (unit tests, a FAKE
list sink instead of Kafka).

Expected days come from ``iotcommon.days`` (the day rule) and from single-zone runs of the same site, not from the
grouping code under test.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iot_simulators.cli import main
from iot_simulators.config import SimConfig, plan
from iot_simulators.encoding import Produce
from iot_simulators.runner import run, site_groups
from iotcommon import days
from iotcommon.config import load

NEW_YORK = ZoneInfo("America/New_York")
ATHENS = ZoneInfo("Europe/Athens")
# 2020-03-08: DST starts in New York (a 23 h day), not in Athens (DST starts there on 03-29)
START = ["--start", "2020-03-06T00:00:00Z", "--until", "2020-03-10T12:00:00Z", "--speed", "max", "--late", ""]


class ListSink:
    """A FAKE Kafka sink: keeps every message in memory."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.failed = 0
        self.broken = False

    @property
    def produce(self) -> Produce:
        return lambda _topic, value, _key: self.messages.append(json.loads(value))

    def on_full(self) -> None:
        raise AssertionError

    def poll(self) -> None:
        pass

    def in_flight(self) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        return 0

    def error_text(self) -> str:
        return ""


def simulate(argv: list[str], environ: dict[str, str]) -> list[dict[str, Any]]:
    cfg = load(SimConfig, argv, environ)
    the_plan = plan(cfg, environ)
    sink = ListSink()
    res = run(the_plan, site_groups(the_plan, cfg.seed), sink, threading.Event(), progress_s=3600,
              flush_timeout_s=1)
    assert res.ok and res.produced == len(sink.messages)
    return sink.messages


def of(messages: list[dict[str, Any]], site: str, sensor: str) -> list[dict[str, Any]]:
    return [m for m in messages if m["site"] == site and m["sensor"] == sensor]


def local_day(ts: str, tz: ZoneInfo) -> date:
    return days.day_of(days.parse_iso(ts), tz)


ZONES = {"IOTPIPE_SITE_TZ": "Europe/Athens", "IOTPIPE_SITE_ZONES": "site-00002=America/New_York"}


@pytest.fixture(scope="module")
def mixed() -> list[dict[str, Any]]:
    return simulate(["--sites", "3", *START], ZONES)


def test_the_plan_groups_sites_by_zone() -> None:
    groups = plan(load(SimConfig, ["--sites", "3"], ZONES), ZONES).groups()
    assert [(g.zone, g.site_numbers) for g in groups] == [("Europe/Athens", [1, 3]), ("America/New_York", [2])]
    assert groups[0].timeline.start == groups[1].timeline.start  # one UTC step grid


def test_meters_report_at_each_site_s_own_local_midnight(mixed: list[dict[str, Any]]) -> None:
    for site, tz in (("site-00001", ATHENS), ("site-00002", NEW_YORK), ("site-00003", ATHENS)):
        stamps = [days.parse_iso(m["ts"]) for m in of(mixed, site, "Etot")]
        first, last = datetime(2020, 3, 6, tzinfo=UTC), datetime(2020, 3, 10, 12, tzinfo=UTC)
        midnights = [days.day_end(date(2020, 3, d), tz) for d in range(4, 12)]
        assert stamps == [t for t in midnights if first < t <= last], site


def test_each_site_s_days_follow_its_zone_dst_included(mixed: list[dict[str, Any]]) -> None:
    ny = Counter(local_day(m["ts"], NEW_YORK) for m in of(mixed, "site-00002", "TH1"))
    athens = Counter(local_day(m["ts"], ATHENS) for m in of(mixed, "site-00001", "TH1"))
    assert ny[date(2020, 3, 8)] == 92  # 23 h: DST starts in New York
    assert ny[date(2020, 3, 7)] == ny[date(2020, 3, 9)] == 96
    assert athens[date(2020, 3, 8)] == athens[date(2020, 3, 9)] == 96
    for site, tz in (("site-00001", ATHENS), ("site-00002", NEW_YORK)):
        motion = Counter(local_day(m["ts"], tz) for m in of(mixed, site, "Mov1"))
        for day in (date(2020, 3, 7), date(2020, 3, 8), date(2020, 3, 9)):
            assert motion[day] in (4, 5), (site, day, motion)  # 4 or 5 events per local day of its own zone


def test_a_site_reads_as_if_its_zone_were_the_only_one(mixed: list[dict[str, Any]]) -> None:
    alone = simulate(["--sites", "1", "--site-offset", "1", "--site-tz", "America/New_York", *START], {})
    assert [m for m in mixed if m["site"] == "site-00002"] == alone
    athens_alone = simulate(["--sites", "3", *START], {"IOTPIPE_SITE_TZ": "Europe/Athens"})
    assert [m for m in mixed if m["site"] != "site-00002"] == [m for m in athens_alone if m["site"] != "site-00002"]


def test_the_temperature_curve_follows_the_local_clock(mixed: list[dict[str, Any]]) -> None:
    """Lowest around 06:00 local, highest around 16:00 local, in each site's own zone."""
    for site, tz in (("site-00001", ATHENS), ("site-00002", NEW_YORK)):
        by_hour: dict[int, list[float]] = {}
        for m in of(mixed, site, "TH1"):
            by_hour.setdefault(days.parse_iso(m["ts"]).astimezone(tz).hour, []).append(m["value"])
        mean = {h: sum(v) / len(v) for h, v in by_hour.items()}
        assert min(mean, key=mean.__getitem__) in (5, 6, 7), (site, mean)
        assert max(mean, key=mean.__getitem__) in (15, 16, 17), (site, mean)


def test_help_documents_the_zone_map(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"], {})
    assert info.value.code == 0
    text = capsys.readouterr().out
    assert "IOTPIPE_SITE_ZONES" in text and "--site-zones" in text


@pytest.mark.parametrize("zones", ["site-00002=Mars/Olympus", "site-00002", "bad site=UTC", "a=UTC,a=UTC"])
def test_a_bad_zone_map_exits_with_2(zones: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--steps", "1"], {"IOTPIPE_SITE_ZONES": zones}) == 2
    assert "IOTPIPE_SITE_ZONES" in capsys.readouterr().err


def test_utc_reference_for_the_new_york_midnight() -> None:
    """The oracle's clock: New York midnight of 2020-03-09 (EDT, UTC-4) is 04:00Z."""
    assert days.day_end(date(2020, 3, 8), NEW_YORK) == datetime(2020, 3, 9, 4, 0, tzinfo=UTC)
