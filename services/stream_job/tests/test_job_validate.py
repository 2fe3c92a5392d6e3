"""Unit tests: slow-path classification (dead-letter reasons) and the SQL fast path's canonical-form pattern."""

from __future__ import annotations

import base64
import json
import random
import re

import pytest

from iotcommon.limits import OUTER_LIMITS, Limits
from iotcommon.messages import Reading, decode_reading
from iotcommon.sensors import SENSORS
from stream_job.sql import CANONICAL
from stream_job.validate import classify

NOW = "2030-01-01T00:00:00Z"


def _reading(**over: object) -> bytes:
    base: dict[str, object] = {"v": 1, "site": "S1", "sensor": "TH1", "ts": "2020-01-01T00:15:00Z", "value": 12.5,
                               "unit": "C", "seq": 3}
    base.update(over)
    return json.dumps(base).encode()


def test_a_valid_reading_in_any_formatting_is_accepted() -> None:
    verdict = classify(b"S1/TH1", _reading(), "t.readings", 0, 5, NOW)
    assert verdict.ok
    assert (verdict.site, verdict.sensor, verdict.ts, verdict.val, verdict.seq) == ("S1", "TH1",
                                                                                    "2020-01-01T00:15:00Z", 12.5, 3)
    assert verdict.ts_ms == 1577837700000


@pytest.mark.parametrize(("payload", "reason"), [
    (b"not json", "unparsable"),
    (b"\xff\xfe\x00", "unparsable"),
    (None, "unparsable"),
    (b"[1, 2]", "schema"),
    (_reading(unit="Wh"), "schema"),
    (_reading(ts="2020-13-01T00:00:00Z"), "schema"),
    (_reading(ts="2020-01-01T00:00:00"), "schema"),
    (_reading(seq=-1), "schema"),
    (_reading(v=2), "schema"),
    (_reading(extra=1), "schema"),
    (json.dumps({"v": 1, "site": "S1"}).encode(), "schema"),
    (_reading(sensor="TH9"), "unknown-sensor"),
    (b'{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":NaN,"unit":"C","seq":1}', "non-finite"),
    (b'{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1e999,"unit":"C","seq":1}',
     "non-finite"),
    (b'{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1' + b"0" * 400 + b',"unit":"C","seq":1}',
     "non-finite"),
    (_reading(value=150.5), "out-of-range"),
    (_reading(value=1e308), "out-of-range"),
    (_reading(ts="0001-01-01T00:00:00Z"), "out-of-range"),
    (_reading(ts="9999-12-31T23:59:59Z"), "out-of-range"),
    (_reading(ts="2201-01-01T00:00:00Z"), "out-of-range"),
    (_reading(ts="1970-01-01T00:00:00Z"), "out-of-range"),
])
def test_every_rejection_is_a_dead_letter_with_the_original_bytes(payload: bytes | None, reason: str) -> None:
    verdict = classify(b"k", payload, "t.readings", 1, 42, NOW)
    assert not verdict.ok
    assert verdict.dl is not None
    letter = json.loads(verdict.dl)
    assert letter["reason"] == reason
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == ("t.readings", 1, 42)
    assert base64.b64decode(letter["payload_b64"]) == (payload or b"")
    assert base64.b64decode(letter["key_b64"]) == b"k"
    assert letter["at"] == NOW


def _random_reading(rng: random.Random) -> Reading:
    sensor = rng.choice(list(SENSORS))
    value = rng.choice([rng.uniform(-1e6, 1e6), float(rng.randint(0, 10**6)), rng.uniform(0, 1) * 1e-7, 0.0, -0.0,
                        1.5e17, 62400.0, 5e-324, rng.uniform(-1, 1) * 1e-300])
    ts = f"2020-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
    site = rng.choice(["S1", "site-2", "a.b_c"])
    return Reading(site, sensor, ts, value, SENSORS[sensor].unit, rng.randint(0, 10**9))


def test_the_canonical_pattern_matches_what_readings_encode_to() -> None:
    rng = random.Random(7)
    pattern = re.compile(CANONICAL)
    for _ in range(2000):
        encoded = _random_reading(rng).encode().decode()
        assert pattern.match(encoded), encoded


@pytest.mark.parametrize("text", [
    '{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":NaN,"unit":"C","seq":1}',
    '{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1e1000,"unit":"C","seq":1}',
    '{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":12345678901234567890}',
    '{"v":1,"site":"S1","sensor":"TH9","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1}',
    '{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1,"x":1}',
    '{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01 00:15:00","value":1,"unit":"C","seq":1}',
    '{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":01,"unit":"C","seq":1}',
    '{"v":1,"site":"S1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":-1}',
    '{"v": 1, "site": "S1", "sensor": "TH1", "ts": "2020-01-01T00:15:00Z", "value": 1, "unit": "C", "seq": 1}',
])
def test_anything_else_takes_the_slow_path(text: str) -> None:
    """Non-canonical text never matches: the Python validator decides (valid or a dead letter)."""
    assert not re.match(CANONICAL, text)


def test_a_canonical_match_is_always_a_valid_reading_apart_from_unit_calendar_and_limits() -> None:
    """The Java fast path additionally checks the unit per sensor, that the instant exists, and the limits (here the
    outer ones, which every configuration lies within)."""
    rng = random.Random(11)
    for _ in range(500):
        reading = _random_reading(rng)
        assert re.fullmatch(CANONICAL, reading.encode().decode())
        assert decode_reading(reading.encode(), OUTER_LIMITS) == reading


def test_the_limits_given_are_the_limits_applied() -> None:
    wide = Limits.from_settings("TH1=-1000:1000", "1970-01-01T00:00:00Z", "2300-01-01T00:00:00Z").wire()
    assert classify(b"k", _reading(value=999.0), "t", 0, 1, NOW, wide).ok
    assert classify(b"k", _reading(ts="2250-01-01T00:00:00Z"), "t", 0, 1, NOW, wide).ok
    assert not classify(b"k", _reading(value=999.0), "t", 0, 1, NOW).ok  # the default range ends at 150
