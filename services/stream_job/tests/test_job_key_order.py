"""Regression: valid readings written in another key order than the canonical one still close days.

The simulator writes readings as {"v","site","sensor","unit","ts","seq","value"}; the job used to take the event time
only from the canonical form, so such readings (all of them, in the live pipeline) never moved the watermark: raw
copies flowed, but no day ever closed and `<prefix>.aggregates` stayed empty. Here the unbounded job starts on an
empty readings topic (two partitions), then one local day of readings plus a closing reading per device arrive, all
in the simulator's key order, and the day's aggregates must come out. Expected values are computed here.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.slow]

TZ = ZoneInfo("Europe/Athens")
SITES = ("ko-a", "ko-b", "ko-c", "ko-d")
SENSORS = {"TH1": "C", "HVAC1": "Wh"}
DAY = "2020-06-10"


def simulator_style(site: str, sensor: str, ts: datetime, seq: int, value: float) -> bytes:
    """Valid reading.v1, keys in the simulator's order (not the canonical order Reading.encode writes)."""
    return json.dumps({"v": 1, "site": site, "sensor": sensor, "unit": SENSORS[sensor],
                       "ts": ts.strftime("%Y-%m-%dT%H:%M:%SZ"), "seq": seq, "value": value},
                      separators=(",", ":")).encode()


def test_non_canonical_key_order_closes_days(job_kit: Any, unique_name: Any) -> None:
    prefix = unique_name("keyorder")
    topics = job_kit.create_topics(prefix, readings_partitions=2)
    job = job_kit.start_job(prefix, "key-order")  # unbounded; the readings topic is still empty

    start = datetime(2020, 6, 10, tzinfo=TZ).astimezone(UTC)  # local day (00:00, 24:00]
    messages: list[tuple[bytes, bytes]] = []
    values: dict[tuple[str, str], list[float]] = {}
    for step in range(1, 97):  # 00:15 .. 24:00 local
        ts = start + timedelta(minutes=15 * step)
        for i, site in enumerate(SITES):
            for sensor in SENSORS:
                value = round(10 + (step * 7 + i * 3) % 17 + (0.25 if sensor == "TH1" else 0.5), 3)
                values.setdefault((site, sensor), []).append(value)
                messages.append((f"{site}/{sensor}".encode(), simulator_style(site, sensor, ts, step, value)))
    closing = start + timedelta(days=1, minutes=15)  # next day 00:15: the watermark passes the day's end everywhere
    messages += [(f"{site}/{sensor}".encode(), simulator_style(site, sensor, closing, 97, 1.0))
                 for site in SITES for sensor in SENSORS]
    landed = job_kit.produce(topics.readings, messages)
    assert {m.partition for m in landed} == {0, 1}, "precondition: every readings partition gets readings"

    want = {f"{site}/AggDay[TH1]/{DAY}": (math.fsum(values[(site, "TH1")]) / 96, 96) for site in SITES}
    want |= {f"{site}/AggDay[HVAC1]/{DAY}": (math.fsum(values[(site, "HVAC1")]), 96) for site in SITES}

    def got() -> dict[str, tuple[float, int]]:
        out: dict[str, tuple[float, int]] = {}
        for m in job_kit.read_all(topics.aggregates, idle=1.0):
            agg = json.loads(m.value)
            out[m.key.decode()] = (agg["value"], agg["count"])
        return out

    job_kit.wait_until(lambda: want.keys() <= got().keys(), job, 600, "the day's aggregates",
                       lambda: f"got {sorted(got())}")
    result = got()
    assert result.keys() == want.keys()
    for key, (value, count) in want.items():
        assert result[key][1] == count, key
        assert result[key][0] == pytest.approx(value, rel=1e-9, abs=1e-6), key
    assert job.terminate() == 0
