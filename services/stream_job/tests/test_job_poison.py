"""Poison input never wedges the stream job (issue 12, item 4), against a real Kafka broker and a real Flink.

Each poison reading (a value near 1e308, timestamps on the local days 0001-01-01 and 9999-12-31, a timestamp in
2201), in the canonical form (JVM fast path) and in another JSON form (Python slow path), is dead-lettered with reason
``out-of-range`` and a detail naming the bound. None of them moves event time: the valid readings after them are still
on time, the day's aggregates are exactly those of the valid readings (computed here in plain Python), nothing is
late, and the job keeps running.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.slow]

ATHENS = ZoneInfo("Europe/Athens")
DAY_START = datetime(2020, 6, 1, tzinfo=ATHENS).astimezone(UTC)  # 2020-06-01 00:00 Athens (UTC+3)
SITE = "poison-site"


def reading(sensor: str, ts: str, value: Any, seq: int, canonical: bool = True) -> bytes:
    unit = {"TH1": "C", "W1": "l"}[sensor]
    obj = {"v": 1, "site": SITE, "sensor": sensor, "ts": ts, "value": value, "unit": unit, "seq": seq}
    if canonical:
        return json.dumps(obj, separators=(",", ":")).encode()
    return json.dumps(dict(reversed(list(obj.items()))), indent=1).encode()  # valid JSON, another form


def quarter(i: int) -> str:
    return (DAY_START + timedelta(minutes=15 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")


POISON = [  # (sensor, ts, value text, what the dead letter's detail names)
    ("W1", quarter(40), 1.7e308, "above the W1 maximum"),  # two of these made the day's sum infinite
    ("TH1", quarter(40), 1e308, "above the TH1 maximum"),
    ("TH1", "0001-01-01T00:00:00Z", 20.0, "not after the window start"),  # local day 0001-01-01 (and 0000-12-31 UTC)
    ("TH1", "0001-01-01T12:00:00Z", 20.0, "not after the window start"),
    ("TH1", "9999-12-31T12:00:00Z", 20.0, "after the window end"),  # local day 9999-12-31
    ("TH1", "9999-12-31T23:30:00Z", 20.0, "after the window end"),  # local day 10000-01-01 in Athens
    ("TH1", "2201-01-01T00:00:00Z", 20.0, "after the window end"),
]


def test_poison_readings_are_dead_letters_and_the_job_keeps_going(job_kit: Any, unique_name: Any) -> None:
    valid: list[tuple[str, str, float]] = []  # (sensor, ts, value) of the valid readings, in order
    messages: list[bytes] = []
    seq = 0
    poison: list[bytes] = []
    for i in range(1, 97 + 8):  # 2020-06-01 00:15 .. 06-02 02:00 local: closes 06-01
        if i == 41:  # in the middle of the day: every poison reading, in both forms
            for canonical in (True, False):
                for sensor, ts, value, _ in POISON:
                    seq += 1
                    poison.append(reading(sensor, ts, value, seq, canonical))
            messages += poison
        for sensor, value in (("TH1", 20.0 + (i % 7) / 4), ("W1", 0.25 + (i % 5) / 8)):
            seq += 1
            messages.append(reading(sensor, quarter(i), value, seq))
            valid.append((sensor, quarter(i), value))

    day = [(s, v) for s, ts, v in valid if DAY_START < datetime.fromisoformat(ts) <= DAY_START + timedelta(days=1)]
    th1 = [v for s, v in day if s == "TH1"]
    w1 = [v for s, v in day if s == "W1"]
    assert len(th1) == len(w1) == 96
    want = {f"{SITE}/AggDay[TH1]/2020-06-01": (math.fsum(th1) / 96, 96),
            f"{SITE}/AggDay[W1]/2020-06-01": (math.fsum(w1), 96)}

    prefix = unique_name("poison")
    topics = job_kit.create_topics(prefix, readings_partitions=1)
    landed = job_kit.produce(topics.readings, [(f"{SITE}/x".encode(), m) for m in messages])
    job = job_kit.start_job(prefix, "poison")

    def aggregates() -> dict[str, tuple[float, int]]:
        best: dict[str, dict[str, Any]] = {}
        for m in job_kit.read_all(topics.aggregates, idle=1.0):
            agg = json.loads(m.value)
            if m.key.decode() not in best or agg["revision"] > best[m.key.decode()]["revision"]:
                best[m.key.decode()] = agg
        return {k: (v["value"], v["count"]) for k, v in best.items() if k in want}

    def complete() -> bool:
        got = aggregates()
        return got.keys() == want.keys() and all(
            got[k][1] == want[k][1] and got[k][0] == pytest.approx(want[k][0], rel=1e-12) for k in want)

    job_kit.wait_until(complete, job, 600, "the day's aggregates after the poison readings",
                       lambda: f"got {aggregates()}, want {want}")
    job_kit.wait_until(lambda: len(job_kit.read_all(topics.deadletter, idle=1.0)) >= len(poison), job, 120,
                       "the dead letters")
    assert job.proc.poll() is None, job.log_tail()  # still running
    raw = job_kit.read_all(topics.raw)
    letters = [json.loads(m.value) for m in job_kit.read_all(topics.deadletter)]
    late = job_kit.read_all(topics.late)
    assert job.terminate() == 0, job.log_tail()

    assert sorted(base64.b64decode(x["payload_b64"]) for x in letters) == sorted(poison)
    positions = {m.value: m.offset for m in landed}
    details = {(sensor, ts, value): detail for sensor, ts, value, detail in POISON}
    for letter in letters:
        payload = base64.b64decode(letter["payload_b64"])
        assert letter["reason"] == "out-of-range", letter
        assert letter["offset"] == positions[payload]
        obj = json.loads(payload)
        assert details[(obj["sensor"], obj["ts"], obj["value"])] in letter["detail"], letter
    assert len(raw) == len(valid)  # every valid reading, the ones after the poison included
    assert late == []  # no poison reading moved event time ahead
