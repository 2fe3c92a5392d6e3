"""Same seed, same readings; a site's readings don't depend on the other sites, the chunking or the start (pure)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

from iot_simulators.encoding import Encoder, site_id
from iot_simulators.engine import Simulation
from iot_simulators.late import parse_rules
from iot_simulators.timeline import Timeline

TZ = ZoneInfo("Europe/Athens")
START = datetime(2020, 3, 27, tzinfo=TZ)  # spans the start of DST
LATE = parse_rules(("20:2d", "120:10d"))


def messages(site_numbers: list[int], seed: int = 5, steps: int = 6 * 96, start: datetime = START,
             chunk: int = 0) -> list[tuple[bytes, bytes]]:
    sim = Simulation(Timeline(start, TZ), site_numbers, seed, LATE, chunk_steps=chunk)
    enc = Encoder([site_id(n) for n in site_numbers])
    return enc.encode_all(sim.run(steps)) + enc.encode_blocks(sim.drain())


def of_site(msgs: list[tuple[bytes, bytes]], site: str) -> list[tuple[bytes, bytes]]:
    return [m for m in msgs if m[0] == site.encode()]  # the Kafka key is the site


def device(payload: bytes) -> str:
    m = json.loads(payload)
    return f"{m['site']}/{m['sensor']}"


def test_the_same_seed_gives_the_same_messages() -> None:
    assert messages([1, 2, 3]) == messages([1, 2, 3])


def test_another_seed_gives_other_values() -> None:
    a, b = messages([1], seed=5), messages([1], seed=6)
    assert len(a) != len(b) or a != b
    values_a = [json.loads(p)["value"] for _, p in a if device(p).endswith("/TH1")]
    values_b = [json.loads(p)["value"] for _, p in b if device(p).endswith("/TH1")]
    assert sum(x != y for x, y in zip(values_a, values_b, strict=True)) > 0.9 * len(values_a)


def test_sites_have_independent_streams() -> None:
    many = messages([1, 2, 3, 4, 5])
    alone = messages([3])  # e.g. replica 2 of a deployment with 1 site per replica
    assert of_site(many, "site-00003") == alone
    th1 = {d: [json.loads(p)["value"] for _, p in many if device(p) == d] for d in ("site-00001/TH1", "site-00002/TH1")}
    assert th1["site-00001/TH1"] and th1["site-00001/TH1"] != th1["site-00002/TH1"]


def test_chunking_does_not_matter() -> None:
    assert messages([1, 2], chunk=1) == messages([1, 2], chunk=37) == messages([1, 2], chunk=96)


def test_values_depend_on_the_instant_not_on_the_start() -> None:
    later = datetime(2020, 3, 29, 12, 0, tzinfo=TZ)
    early = {(device(p), json.loads(p)["ts"]): json.loads(p)["value"] for _, p in messages([1])}
    late = {(device(p), json.loads(p)["ts"]): json.loads(p)["value"] for _, p in messages([1], start=later, steps=96)}
    quarter = {key: v for key, v in late.items() if not key[0].endswith(("/Etot", "/Wtot"))}
    assert quarter
    assert all(early[key] == v for key, v in quarter.items())
    assert site_id(1) == "site-00001" and site_id(123456) == "site-123456"
