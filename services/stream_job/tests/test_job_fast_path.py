"""The JVM fast path (the job's Java functions, run by a real local Flink) accepts exactly the canonical readings and
reads the same fields as the reference decoder; everything else is left to the slow path (NULL).

Expected verdicts are computed here in Python from the grammar (``sql.CANONICAL`` with ``re``), the sensor units and
``iotcommon.messages.decode_reading``, independently of the Java code under test.
"""

from __future__ import annotations

import base64
import json
import random
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from iotcommon.errors import MessageError
from iotcommon.messages import Reading, decode_reading
from iotcommon.sensors import SENSORS
from stream_job.core import ts_ms_of
from stream_job.sql import CANONICAL

pytestmark = pytest.mark.flink

PROBE = Path(__file__).with_name("fast_path_probe.py")
BASE = '{"v":1,"site":"S1","sensor":"TH1","ts":"%s","value":%s,"unit":"%s","seq":%s}'


def corpus() -> list[bytes]:
    rng = random.Random(5)
    out: list[bytes] = []
    for _ in range(300):
        sensor = rng.choice(list(SENSORS))
        ts = (f"20{rng.randint(10, 30)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
              f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")
        value = rng.choice([rng.uniform(-1e6, 1e6), float(rng.randint(0, 10**6)), 1e-7, 0.0, -0.0, 1.5e20, 62400.0])
        out.append(Reading(rng.choice(["S1", "site-2", "a.b_c"]), sensor, ts, value, SENSORS[sensor].unit,
                           rng.randint(0, 10**12)).encode())
    edge = [
        ("2020-01-01T00:15:00.5Z", "1", "C", "1"), ("2020-01-01T00:15:00.123456Z", "1", "C", "1"),
        ("2020-01-01T00:15:00.999Z", "1", "C", "1"), ("2020-02-29T23:59:59Z", "1e120", "C", "1"),
        ("2021-02-29T00:00:00Z", "1", "C", "1"), ("2020-04-31T00:00:00Z", "1", "C", "1"),
        ("2020-01-01T24:00:00Z", "1", "C", "1"), ("2020-01-01T23:60:00Z", "1", "C", "1"),
        ("2020-01-01T00:00:60Z", "1", "C", "1"), ("1970-01-01T00:00:00Z", "1", "C", "1"),
        ("1969-12-31T23:59:59Z", "1", "C", "1"), ("1970-01-01T00:00:00.001Z", "1", "C", "1"),
        ("2020-01-01T00:15:00Z", "1", "Wh", "1"), ("2020-01-01T00:15:00Z", "NaN", "C", "1"),
        ("2020-01-01T00:15:00Z", "01", "C", "1"), ("2020-01-01T00:15:00Z", "1", "C", "-1"),
        ("2020-01-01T00:15:00Z", "-0.0", "C", "0"), ("2020-01-01T00:15:00Z", "1E+05", "C", "123456789012345678"),
    ]
    out += [(BASE % e).encode() for e in edge]
    out += [b"", b"not json", b"\xff\xfe", b'{"v":1}', (BASE % ("2020-01-01T00:15:00Z", "1", "C", "1")).encode()[:-1],
            b" " + (BASE % ("2020-01-01T00:15:00Z", "1", "C", "1")).encode(),
            json.dumps({"v": 1, "site": "S1", "sensor": "TH1", "ts": "2020-01-01T00:15:00Z", "value": 1, "unit": "C",
                        "seq": 1}).encode()]
    return out


def expected(message: bytes) -> dict[str, Any] | None:
    """The fast path's verdict by the rules: the whole text matches the grammar, the unit is the sensor's, the
    instant exists and is after the epoch. A fast reading must also be what the reference decoder reads."""
    try:
        text = message.decode()
    except UnicodeDecodeError:
        return None
    if not re.fullmatch(CANONICAL, text):
        return None
    parts = text.split('"')
    if parts[19] != SENSORS[parts[9]].unit:
        return None
    try:
        ts_ms = ts_ms_of(parts[13][:-1])
    except ValueError:
        return None
    if ts_ms <= 0:
        return None
    reading = decode_reading(message)  # raises if the grammar ever admitted an invalid reading
    return {"site": reading.site, "sensor": reading.sensor, "ts": reading.ts, "value": parts[16][1:-1],
            "seq": parts[22][1:-1], "time": _sql_timestamp(ts_ms)}


def _sql_timestamp(ms: int) -> str:
    """How Flink prints a TIMESTAMP(3) cast to STRING."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def test_java_fast_path_agrees_with_the_grammar_and_the_reference_decoder(flink_runtime: Any) -> None:
    messages = corpus()
    done = subprocess.run([str(flink_runtime.python), str(PROBE)], env=dict(flink_runtime.env), timeout=300,
                          input=json.dumps([base64.b64encode(m).decode() for m in messages]),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    fast = 0
    for message, verdict in zip(messages, got, strict=True):
        want = expected(message)
        if want is None:
            assert all(v is None for v in verdict.values()), (message, verdict)
        else:
            fast += 1
            assert verdict == want, message
    assert fast >= 300  # every encoded reading (and the valid edge cases) took the fast path


def test_every_message_the_decoder_rejects_is_left_to_the_slow_path() -> None:
    """Sanity of the oracle itself: expected() never calls a rejected message fast."""
    for message in corpus():
        try:
            decode_reading(message)
        except MessageError:
            assert expected(message) is None, message
