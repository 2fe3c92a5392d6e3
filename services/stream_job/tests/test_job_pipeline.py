"""The stream job against a real Kafka broker and a real Flink (PyFlink MiniCluster in a subprocess).

Deterministic input (seeded), expected aggregates computed here independently in plain Python (the job's aggregation
code is never called): ordinary days, both DST days of Europe/Athens 2020, readings exactly at local midnight,
duplicates (byte-identical and differently formatted), readings 1 hour, 2 days and 10 days late, every dead-letter case,
and a kill -9 / restart from the checkpoint of the unbounded job.
"""

from __future__ import annotations

import base64
import json
import math
import random
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import jsonschema
import pytest
from referencing import Registry, Resource

from iotcommon.messages import SCHEMA_FILES

sys.path.insert(0, str(Path(__file__).parent))
from job_aggregates import R, as_pairs, difference, latest, same

TZ = ZoneInfo("Europe/Athens")
LATENESS = timedelta(days=2)
QUARTERLY = ("TH1", "TH2", "HVAC1", "HVAC2", "MiAC1", "MiAC2", "W1")
MEAN, SUM = {"TH1", "TH2"}, {"HVAC1", "HVAC2", "MiAC1", "MiAC2", "W1"}
PARTS = {"Etot": ("HVAC1", "HVAC2", "MiAC1", "MiAC2"), "Wtot": ("W1",)}

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.slow]


# -- input ----------------------------------------------------------------------------------------------------------


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=TZ).astimezone(UTC)


@dataclass
class Generator:
    """Seeded site simulator: 15-min sensors, cumulative meters at local midnight, motion events."""

    rng: random.Random
    sites: tuple[str, ...]
    seq: Counter[tuple[str, str]] = field(default_factory=Counter)
    meters: dict[tuple[str, str], float] = field(default_factory=dict)

    def reading(self, site: str, sensor: str, ts: datetime, value: float) -> R:
        self.seq[(site, sensor)] += 1
        return R(site, sensor, ts, value, self.seq[(site, sensor)])

    def span(self, start: datetime, end: datetime) -> list[R]:
        """Readings stamped start, start+15 min, ..., end (UTC steps: DST-proof)."""
        out: list[R] = []
        ts = start
        while ts <= end:
            midnight = ts.astimezone(TZ).time() == time(0)
            for site in self.sites:
                for sensor in QUARTERLY:
                    value = round(self.rng.uniform(8, 32), 2) if sensor in MEAN else round(self.rng.uniform(0, 150), 1)
                    out.append(self.reading(site, sensor, ts, value))
                if midnight:
                    for sensor, step in (("Etot", 62400.0), ("Wtot", 110.0)):
                        meter = self.meters.get((site, sensor), 1000.0) + step + round(self.rng.uniform(-9, 9), 1)
                        self.meters[(site, sensor)] = meter
                        out.append(self.reading(site, sensor, ts, meter))
                if midnight or self.rng.random() < 0.05:  # motion, at midnight sharp too
                    out.append(self.reading(site, "Mov1", ts + timedelta(minutes=0 if midnight else 7), 1.0))
            ts += timedelta(minutes=15)
        return sorted(out, key=lambda r: r.ts)


# -- expected: independent of the job's code -------------------------------------------------------------------------


def day_of(ts: datetime) -> date:
    """(D 00:00, D+1 00:00] local: a reading at exactly midnight closes the previous day."""
    wall = ts.astimezone(TZ)
    return wall.date() - timedelta(days=1) if wall.time() == time(0) else wall.date()


def end_of(day: date) -> datetime:
    return datetime.combine(day + timedelta(days=1), time(0), tzinfo=TZ).astimezone(UTC)


def expected_aggregates(readings: list[R], watermark: datetime) -> dict[str, tuple[float, int]]:
    """key '<site>/<name>/<day>' -> (value, count) for every day closed by `watermark`."""
    unique = {r.ident: r for r in readings}
    values: dict[tuple[str, date, str], list[float]] = defaultdict(list)
    last: dict[tuple[str, date, str], R] = {}
    for r in unique.values():
        key = (r.site, day_of(r.ts), r.sensor)
        values[key].append(r.value)
        if r.sensor in PARTS and (key not in last or (r.ts, r.seq) > (last[key].ts, last[key].seq)):
            last[key] = r
    out: dict[str, tuple[float, int]] = {}
    for (site, day, sensor), vals in values.items():
        if end_of(day) > watermark:
            continue
        if sensor in MEAN:
            out[f"{site}/AggDay[{sensor}]/{day}"] = (math.fsum(vals) / len(vals), len(vals))
        elif sensor in SUM:
            out[f"{site}/AggDay[{sensor}]/{day}"] = (math.fsum(vals), len(vals))
        elif sensor == "Mov1":
            out[f"{site}/AggDayMov[Mov1]/{day}"] = (float(len(vals)), len(vals))
        else:
            prev = last.get((site, day - timedelta(days=1), sensor))
            if prev is None:
                continue
            diff = last[(site, day, sensor)].value - prev.value
            out[f"{site}/AggDayDiff[{sensor}]/{day}"] = (diff, 2)
            part_values = [v for p in PARTS[sensor] for v in values.get((site, day, p), [])]
            out[f"{site}/AggDayRest[{sensor}]/{day}"] = (diff - math.fsum(part_values), 2 + len(part_values))
    return out


def schema(name: str) -> dict[str, Any]:
    text = resources.files("iotcommon").joinpath("schemas", name).read_text("utf-8")
    result: dict[str, Any] = json.loads(text)
    return result


def schema_validator(name: str) -> jsonschema.Draft202012Validator:
    """A validator that resolves references between the schema files (aggregate.v1.json refers to reading.v1.json)."""
    registry: Registry = Registry()
    for filename in SCHEMA_FILES:
        registry = registry.with_resource(filename, Resource.from_contents(schema(filename)))
    return jsonschema.Draft202012Validator(schema(name), registry=registry)


def bad_messages() -> list[tuple[bytes | None, bytes | None, str]]:
    """(key, value, expected reason): one or more of every dead-letter case."""
    good = {"v": 1, "site": "A", "sensor": "TH1", "ts": "2020-10-24T10:00:00Z", "value": 1.5, "unit": "C", "seq": 10**6}

    def variant(**over: Any) -> bytes:
        return json.dumps({**good, **over}).encode()

    missing = {k: v for k, v in good.items() if k != "seq"}
    return [
        (b"A/TH1", b"this is not json", "unparsable"),
        (b"A/TH1", b"\xff\xfe\xfa", "unparsable"),
        (b"A/TH1", None, "unparsable"),
        (None, b"", "unparsable"),
        (b"A/TH1", json.dumps(missing).encode(), "schema"),
        (b"A/TH1", variant(extra=True), "schema"),
        (b"A/TH1", variant(unit="Wh"), "schema"),
        (b"A/TH1", variant(ts="2020-02-30T10:00:00Z"), "schema"),
        (b"A/TH1", variant(ts="2020-10-24T10:00:00+02:00"), "schema"),
        (b"A/TH1", variant(value="1.5"), "schema"),
        (b"A/TH1", variant(v=2), "schema"),
        (b"A/TH1", b"[1,2,3]", "schema"),
        (b"A/TH9", variant(sensor="TH9"), "unknown-sensor"),
        (b"A/TH1", variant(value=float("nan")), "non-finite"),
        (b"A/TH1", b'{"v":1,"site":"A","sensor":"TH1","ts":"2020-10-24T10:00:00Z","value":Infinity,"unit":"C","seq":5}',
         "non-finite"),
        (b"A/TH1", b'{"v":1,"site":"A","sensor":"TH1","ts":"2020-10-24T10:00:00Z","value":1e400,"unit":"C","seq":5}',
         "non-finite"),
    ]


# -- the scenario test -----------------------------------------------------------------------------------------------


def test_aggregates_lateness_duplicates_and_dead_letters(job_kit: Any, unique_name: Any) -> None:
    rng = random.Random(20200329)
    gen = Generator(rng, ("A", "B"))
    march = gen.span(local("2020-03-27 00:00"), local("2020-03-31 00:00"))  # 29 Mar: 23 h
    october = gen.span(local("2020-10-22 00:00"), local("2020-10-27 00:30"))  # 25 Oct: 25 h
    phase1 = march + october
    # duplicates: byte-identical re-sends and the same readings formatted differently (slow path)
    dup_same = rng.sample(phase1, 40)
    dup_pretty = rng.sample(phase1, 20)
    messages: list[tuple[bytes | None, bytes | None]] = [(f"{r.site}/{r.sensor}".encode(), r.encode()) for r in phase1]
    for r in dup_same:
        messages.insert(messages.index((f"{r.site}/{r.sensor}".encode(), r.encode())) + 1,
                        (f"{r.site}/{r.sensor}".encode(), r.encode()))
    for r in dup_pretty:
        messages.insert(messages.index((f"{r.site}/{r.sensor}".encode(), r.encode())) + 1,
                        (f"{r.site}/{r.sensor}".encode(), r.encode(pretty=True)))
    bad = bad_messages()
    for i, (key, value, _) in enumerate(bad):
        messages.insert(100 + 97 * i, (key, value))
    valid_count = len(phase1) + len(dup_same) + len(dup_pretty)

    last_closed_end = local("2020-10-27 00:00")  # watermark after phase 1: in [this, 00:30 - delay]
    # phase 2, once the job has closed 26 Oct:
    phase2 = [
        gen.reading("A", "TH1", local("2020-10-26 23:37"), 40.0),  # ~1 h late: 26 Oct revised
        gen.reading("B", "HVAC1", local("2020-10-26 22:59"), 150.0),  # ~1.5 h late: 26 Oct revised (Rest too)
        gen.reading("A", "W1", local("2020-10-25 00:23"), 9.0),  # 2 days 7 min late, 25 Oct within lateness
        gen.reading("B", "Etot", local("2020-10-25 12:00"), 1.0),  # 25 Oct, earlier than its end value: no change
        gen.reading("A", "W1", local("2020-10-24 23:00"), 9.0),  # 24 Oct ended 2 d 30 min ago: late
        gen.reading("A", "W1", local("2020-10-17 00:30"), 9.0),  # 10 days late
        gen.reading("B", "HVAC2", local("2020-03-28 12:00"), 9.0),  # months late
    ]
    phase2_messages = [(f"{r.site}/{r.sensor}".encode(), r.encode()) for r in phase2]
    phase2_messages.append(phase2_messages[0])  # a duplicate of a late-but-accepted reading
    phase2_messages.append((b"A/TH1", phase1[-1].encode(pretty=True)))  # a duplicate of an old one
    valid_count += len(phase2_messages)

    accepted2 = [r for r in phase2 if end_of(day_of(r.ts)) + LATENESS > last_closed_end]
    rejected2 = [r for r in phase2 if r not in accepted2]
    watermark_max = local("2020-10-27 00:30")
    assert accepted2 == [r for r in phase2 if end_of(day_of(r.ts)) + LATENESS > watermark_max]  # no ambiguity
    assert len(accepted2) == 4 and len(rejected2) == 3

    want_phase1 = expected_aggregates(phase1, last_closed_end)
    want = expected_aggregates(phase1 + accepted2, last_closed_end)
    # the scenario covers what it claims
    assert "A/AggDay[TH1]/2020-03-29" in want and want["A/AggDay[TH1]/2020-03-29"][1] == 92
    assert "A/AggDay[TH1]/2020-10-25" in want and want["A/AggDay[TH1]/2020-10-25"][1] == 100
    assert "A/AggDayDiff[Etot]/2020-10-25" in want and "A/AggDayDiff[Etot]/2020-10-22" in want
    assert "A/AggDayDiff[Etot]/2020-10-21" not in want  # its previous day's end value never came: no Diff/Rest
    assert "A/AggDayRest[Wtot]/2020-10-21" not in want
    assert want["A/AggDay[TH1]/2020-10-26"] != want_phase1["A/AggDay[TH1]/2020-10-26"]
    assert want["B/AggDayRest[Etot]/2020-10-26"] != want_phase1["B/AggDayRest[Etot]/2020-10-26"]

    prefix = unique_name("sj")
    topics = job_kit.create_topics(prefix, readings_partitions=2)
    landed = job_kit.produce(topics.readings, messages)
    job = job_kit.start_job(prefix, "scenario")

    def aggregates_now() -> dict[str, tuple[float, int]]:
        return as_pairs(latest(job_kit.read_all(topics.aggregates, idle=1.0)))

    job_kit.wait_until(lambda: same(aggregates_now(), want_phase1), job, 600, "the first aggregates",
                       lambda: difference(aggregates_now(), want_phase1))
    job_kit.produce(topics.readings, phase2_messages)
    job_kit.wait_until(lambda: same(aggregates_now(), want), job, 300, "the revised aggregates",
                       lambda: difference(aggregates_now(), want))
    job_kit.wait_until(lambda: len(job_kit.read_all(topics.late, idle=1.0)) >= len(rejected2), job, 120,
                       "the late readings")
    assert job.terminate() == 0, job.log_tail()

    # aggregates: latest revision per key == expected; revisions count up from 1; first emission came before late data
    produced = job_kit.read_all(topics.aggregates)
    final = latest(produced)
    assert same(as_pairs(final), want)
    validator = schema_validator("aggregate.v1.json")
    revisions: dict[str, list[int]] = defaultdict(list)
    for m in produced:
        agg = json.loads(m.value)
        validator.validate(agg)
        revisions[m.key.decode()].append(agg["revision"])
        assert agg["window_end"] == end_of(date.fromisoformat(agg["day"])).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert all(revs == list(range(1, len(revs) + 1)) for revs in revisions.values()), revisions
    # revised by phase 2 (first emitted before it); how many revisions a day gets may vary, only the last is fixed
    assert max(revisions["A/AggDay[TH1]/2020-10-26"]) >= 2
    assert max(revisions["A/AggDay[W1]/2020-10-25"]) >= 2
    assert max(revisions["B/AggDayRest[Etot]/2020-10-26"]) >= 2
    assert not any(k.endswith("2020-10-27") for k in final)  # 27 Oct is still open

    # late readings: exactly the rejected ones, with the reason and how late
    late = [json.loads(m.value) for m in job_kit.read_all(topics.late)]
    assert sorted((x["reading"]["site"], x["reading"]["sensor"], x["reading"]["ts"], x["day"]) for x in late) == sorted(
        (r.site, r.sensor, r.ts_text, day_of(r.ts).isoformat()) for r in rejected2)
    for x in late:
        assert x["reason"] == "beyond-allowed-lateness"
        wm_floor = last_closed_end - (end_of(date.fromisoformat(x["day"])) + LATENESS)
        assert x["late_by_ms"] >= wm_floor.total_seconds() * 1000
        schema_validator("reading.v1.json").validate(x["reading"])

    # dead letters: every bad message once, with its reason, original bytes and source position
    letters = [json.loads(m.value) for m in job_kit.read_all(topics.deadletter)]
    dl_validator = schema_validator("deadletter.v1.json")
    for letter in letters:
        dl_validator.validate(letter)
    bad_landed = {(m.partition, m.offset): m for m in landed if m.value in {b for _, b, _ in bad} or m.value is None}
    got_dl = {(x["partition"], x["offset"]): x for x in letters}
    assert got_dl.keys() == bad_landed.keys()
    reasons = {(k, v): reason for k, v, reason in bad}
    for pos, m in bad_landed.items():
        x = got_dl[pos]
        assert x["source_topic"] == topics.readings
        assert base64.b64decode(x["payload_b64"]) == (m.value or b"")
        assert (base64.b64decode(x["key_b64"]) if x["key_b64"] is not None else None) == m.key
        assert x["reason"] == reasons[(m.key, m.value)]

    # raw: every valid message exactly once (exactly-once sink), same bytes, keyed by device
    raw = job_kit.read_all(topics.raw)
    assert len(raw) == valid_count
    want_raw = Counter(v for _, v in messages if v not in {b for _, b, _ in bad} and v is not None)
    want_raw.update(v for _, v in phase2_messages)
    assert Counter(m.value for m in raw) == want_raw
    for m in raw[:50]:
        obj = json.loads(m.value)
        assert m.key == f"{obj['site']}/{obj['sensor']}".encode()


# -- kill -9 and restart from the checkpoint ---------------------------------------------------------------------------


def test_kill_and_restart_from_checkpoint_loses_and_doubles_nothing(job_kit: Any, unique_name: Any) -> None:
    gen = Generator(random.Random(7), ("A", "B", "C"))
    readings = gen.span(local("2020-01-01 00:00"), local("2020-01-07 00:30"))
    cut1 = next(i for i, r in enumerate(readings) if r.ts >= local("2020-01-03 06:00"))
    cut2 = next(i for i, r in enumerate(readings) if r.ts >= local("2020-01-05 12:00"))
    parts = [readings[:cut1], readings[cut1:cut2], readings[cut2:]]
    want = expected_aggregates(readings, local("2020-01-07 00:00"))
    first_closed = expected_aggregates(readings[:cut1], local("2020-01-02 00:00"))

    prefix = unique_name("sjr")
    topics = job_kit.create_topics(prefix, readings_partitions=2)

    def send(batch: list[R]) -> None:
        job_kit.produce(topics.readings, [(f"{r.site}/{r.sensor}".encode(), r.encode()) for r in batch])

    def aggregates_now() -> dict[str, tuple[float, int]]:
        return as_pairs(latest(job_kit.read_all(topics.aggregates, idle=1.0)))

    send(parts[0])
    first = job_kit.start_job(prefix, "before-kill", flink_parallelism="2")
    job_kit.wait_until(lambda: first_closed.items() <= aggregates_now().items(), first, 600,
                       "aggregates of the first day (so a checkpoint has completed)")
    send(parts[1])
    job_kit.wait_until(lambda: len(job_kit.read_all(topics.raw, idle=0.5)) > cut1, first, 300,
                       "part of the second batch in the output")
    first.kill()  # mid-stream: some output of the second batch is committed, the rest is in open transactions
    checkpoints = list((job_kit.tmp / "home" / "stream_job" / "checkpoints" / prefix).glob("*/chk-*/_metadata"))
    assert checkpoints, "no retained checkpoint"

    send(parts[2])
    second = job_kit.start_job(prefix, "after-restart", flink_parallelism="2")
    job_kit.wait_until(lambda: same(aggregates_now(), want), second, 600, "the aggregates after the restart",
                       lambda: difference(aggregates_now(), want))
    assert second.terminate() == 0, second.log_tail()
    assert "restoring from" in second.log.read_text()

    produced = job_kit.read_all(topics.aggregates)
    assert same(as_pairs(latest(produced)), want)
    revisions: dict[str, list[int]] = defaultdict(list)
    for m in produced:
        revisions[m.key.decode()].append(json.loads(m.value)["revision"])
    assert all(sorted(revs) == list(range(1, len(revs) + 1)) for revs in revisions.values()), revisions
    raw = job_kit.read_all(topics.raw)
    assert Counter(m.value for m in raw) == Counter(r.encode() for r in readings)  # nothing lost, nothing twice
