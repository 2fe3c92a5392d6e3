"""The JVM fast path (the job's Java functions, run by a real local Flink) accepts exactly what the reference decoder
``iotcommon.messages.decode_reading`` accepts among canonical messages, under the same plausibility limits, and reads
the same fields; everything else is left to the slow path (NULL), and never gets an event time from it.

Expected verdicts come from ``decode_reading`` and from the grammar (``sql.CANONICAL`` with ``re``), independently
of the Java code under test. The property test feeds hypothesis-generated random and adversarial readings
through the real functions; its seed and example count are printed (rerun a seed with IOTPIPE_HYPOTHESIS_SEED=<n>).
"""

from __future__ import annotations

import base64
import json
import math
import os
import random
import re
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from iotcommon.errors import MessageError
from iotcommon.limits import DEFAULT_LIMITS, Limits, ms_to_ts, ts_to_ms
from iotcommon.messages import Reading, decode_reading
from iotcommon.sensors import SENSORS
from stream_job.sql import CANONICAL

pytestmark = pytest.mark.flink

PROBE = Path(__file__).with_name("fast_path_probe.py")
BASE = '{"v":1,"site":"S1","sensor":"TH1","ts":"%s","value":%s,"unit":"%s","seq":%s}'
KEYS = ("v", "site", "sensor", "ts", "value", "unit", "seq")


class Probe:
    """The probe process (PyFlink venv): one Flink batch query per request, one TableEnvironment for all."""

    def __init__(self, runtime: Any) -> None:
        self.proc = subprocess.Popen([str(runtime.python), str(PROBE)], env=dict(runtime.env), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.batches = 0

    def run(self, limits: Limits, messages: list[bytes]) -> list[dict[str, Any]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        request = {"limits": limits.wire(), "messages": [base64.b64encode(m).decode() for m in messages]}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:  # Flink may print log lines before the answer
            if line.startswith("["):
                self.batches += 1
                result: list[dict[str, Any]] = json.loads(line)
                return result
        pytest.fail(f"the fast-path probe exited ({self.proc.wait(timeout=60)}) without an answer")

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def probe(flink_runtime: Any) -> Iterator[Probe]:
    p = Probe(flink_runtime)
    try:
        yield p
    finally:
        p.close()


# -- the oracle --------------------------------------------------------------------------------------------------


def reference(message: bytes, limits: Limits) -> Reading | None:
    try:
        return decode_reading(message, limits)
    except MessageError:
        return None


def canonical_shape(message: bytes) -> bool:
    """The compact key-order form the grammar describes (the Java functions also check unit, calendar, limits)."""
    try:
        return re.fullmatch(CANONICAL, message.decode()) is not None
    except UnicodeDecodeError:
        return False


def _sql_timestamp(ms: int) -> str:
    """How Flink prints a TIMESTAMP(3) cast to STRING."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def disagreement(message: bytes, verdict: dict[str, Any], limits: Limits) -> str | None:
    """None when the Java verdict agrees with the reference decoder, else what differs."""
    want = reference(message, limits)
    if verdict["site"] is None:
        if any(v is not None for v in verdict.values()):
            return f"partial verdict {verdict}"
        if want is not None and canonical_shape(message):
            return f"a valid canonical reading was left to the slow path (decoder: {want})"
        return None
    if want is None:
        return f"the fast path accepted what the decoder rejects: {verdict}"
    got = (verdict["site"], verdict["sensor"], verdict["ts"], float(verdict["value"]), int(verdict["seq"]),
           verdict["time"])
    expected = (want.site, want.sensor, want.ts, want.value, want.seq, _sql_timestamp(ts_to_ms(want.ts)))
    return None if got == expected else f"fields differ: java {got}, decoder {expected}"


# -- a fixed corpus ----------------------------------------------------------------------------------------------


def corpus() -> list[bytes]:
    rng = random.Random(5)
    out: list[bytes] = []
    for _ in range(300):
        sensor = rng.choice(list(SENSORS))
        ts = (f"20{rng.randint(10, 30)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
              f"{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z")
        low, high = DEFAULT_LIMITS.range_of(sensor)
        value = rng.choice([rng.uniform(low, high), float(rng.randint(0, 100)), 1e-7, 0.0, -0.0, high, low])
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
        ("2020-01-01T00:15:00Z", "-0.0", "C", "0"), ("2020-01-01T00:15:00Z", "1E+01", "C", "123456789012345678"),
        ("2020-01-01T00:15:00Z", "1e308", "C", "1"), ("2020-01-01T00:15:00Z", "1e999", "C", "1"),
        ("2020-01-01T00:15:00Z", "5e-324", "C", "9223372036854775807"),
        ("2020-01-01T00:15:00Z", "1", "C", "9223372036854775808"),
        ("0001-01-01T00:00:00Z", "1", "C", "1"), ("9999-12-31T23:59:59.999999Z", "1", "C", "1"),
        ("2200-01-01T00:00:00Z", "1", "C", "1"), ("2200-01-01T00:00:00.001Z", "1", "C", "1"),
        ("2201-06-01T00:00:00Z", "1", "C", "1"), ("2020-01-01T00:15:00Z", "150", "C", "1"),
        ("2020-01-01T00:15:00Z", "150.00000000000003", "C", "1"), ("2020-01-01T00:15:00Z", "-100", "C", "1"),
    ]
    out += [(BASE % e).encode() for e in edge]
    out += [b"", b"not json", b"\xff\xfe", b'{"v":1}', (BASE % ("2020-01-01T00:15:00Z", "1", "C", "1")).encode()[:-1],
            b" " + (BASE % ("2020-01-01T00:15:00Z", "1", "C", "1")).encode(),
            json.dumps({"v": 1, "site": "S1", "sensor": "TH1", "ts": "2020-01-01T00:15:00Z", "value": 1, "unit": "C",
                        "seq": 1}).encode()]
    return out


def test_java_fast_path_agrees_with_the_reference_decoder_on_a_fixed_corpus(probe: Probe) -> None:
    messages = corpus()
    got = probe.run(DEFAULT_LIMITS, messages)
    problems = [(m, d) for m, v in zip(messages, got, strict=True) if (d := disagreement(m, v, DEFAULT_LIMITS))]
    assert problems == []
    fast = sum(v["site"] is not None for v in got)
    assert fast >= 300  # every encoded reading (and the valid edge cases) took the fast path
    out_of_window = [v["time"] for m, v in zip(messages, got, strict=True) if b'"ts":"9999' in m or b'"ts":"0001' in m]
    assert out_of_window == [None, None]  # reading_time gives them no event time: they cannot move the watermark


# -- the property: random and adversarial readings ---------------------------------------------------------------

LIMIT_CHOICES = [
    DEFAULT_LIMITS,
    Limits.from_settings("W1=0:10,TH1=-5.5:5.5,Etot=1e17:1e18,Mov1=1:1", "2000-02-29T00:00:00Z",
                         "2030-01-01T00:00:00.5Z"),
]


def _ts_text(ms: int, digits: int) -> str | None:
    if not -62135596800000 <= ms < 253402300800000:  # years 0001..9999
        return None
    text = ms_to_ts(ms)[:19]
    return f"{text}.{ms % 1000:03d}{'0' * (digits - 3)}Z" if digits >= 3 else f"{text}Z"


@st.composite
def timestamps(draw: st.DrawFn, limits: Limits) -> str:
    kind = draw(st.sampled_from(["bound", "random", "calendar", "fraction"]))
    if kind == "bound":
        base = draw(st.sampled_from([limits.ts_min_ms, limits.ts_max_ms, 0, ts_to_ms("2200-01-01T00:00:00Z")]))
        text = _ts_text(base + draw(st.sampled_from([-1000, -1, 0, 1, 1000])), draw(st.sampled_from([0, 3, 6])))
        return text or "2020-01-01T00:00:00Z"
    if kind == "calendar":  # leap days, 24:00, 23:60, impossible dates, the ends of the calendar
        day = draw(st.sampled_from(["2020-02-29", "2021-02-29", "2100-02-29", "2000-02-29", "2020-04-31",
                                    "0001-01-01", "9999-12-31", "1970-01-01", "2199-12-31", "2200-01-01",
                                    "\u0662\u0660\u0662\u0660-01-01"]))
        clock = draw(st.sampled_from(["00:00:00", "24:00:00", "23:59:59", "23:60:00", "00:00:60", "12:00:00.5"]))
        return f"{day}T{clock}Z"
    if kind == "fraction":
        digits = draw(st.integers(1, 6))
        frac = "".join(draw(st.lists(st.sampled_from("0123456789"), min_size=digits, max_size=digits)))
        return f"2020-03-29T0{draw(st.integers(0, 9))}:00:00.{frac}Z"
    ms = draw(st.integers(ts_to_ms("1960-01-01T00:00:00Z"), ts_to_ms("2300-01-01T00:00:00Z")))
    return _ts_text(ms, draw(st.sampled_from([0, 3, 6]))) or "2020-01-01T00:00:00Z"


@st.composite
def value_texts(draw: st.DrawFn, low: float, high: float) -> str:
    """The JSON text of a value: at and just beyond the sensor's bounds, huge, tiny, signed zeros, exponent forms."""
    kind = draw(st.sampled_from(["bound", "special", "float", "int", "exponent"]))
    if kind == "bound":
        bound = draw(st.sampled_from([low, high]))
        return repr(draw(st.sampled_from([bound, math.nextafter(bound, math.inf), math.nextafter(bound, -math.inf)])))
    if kind == "special":
        return draw(st.sampled_from(["1e308", "-1e308", "1.7976931348623157e+308", "1e999", "-0.0", "0", "-0",
                                     "5e-324", "2.2250738585072014e-308", "1e-400", "NaN", "Infinity", "1E+05",
                                     "1e-07", "01", "1.", ".5", "+1", "0x10", "1e1000", "\u0661"]))
    if kind == "float":
        return repr(draw(st.floats(allow_nan=False, allow_infinity=False)))
    if kind == "int":
        return str(draw(st.one_of(st.integers(-10**6, 10**6), st.integers(-10**25, 10**25))))
    mantissa = draw(st.integers(0, 99))
    exponent = draw(st.integers(-330, 330))
    return f"{mantissa}{draw(st.sampled_from(['e', 'E']))}{'+' if exponent >= 0 and draw(st.booleans()) else ''}" \
           f"{exponent}"


_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SITES = st.builds(lambda first, rest: first + rest, st.sampled_from(_ALNUM),
                   st.text(alphabet=_ALNUM + "_.-", max_size=62))  # [A-Za-z0-9][A-Za-z0-9_.-]{0,62}


def _odd(draw: st.DrawFn) -> bool:
    """One field in twelve is adversarial, so that about half of the messages are valid."""
    return draw(st.integers(0, 11)) == 0


@st.composite
def messages(draw: st.DrawFn, limits: Limits) -> bytes:
    sensor = draw(st.sampled_from(["TH9", "th1", "TH1\n"] if _odd(draw) else list(SENSORS)))
    low, high = limits.range_of(sensor) if sensor in SENSORS else (0.0, 1.0)
    unit = SENSORS[sensor].unit if sensor in SENSORS else "C"
    if _odd(draw):
        unit = draw(st.sampled_from(["C", "Wh", "l", "count", "K"]))
    site = draw(st.sampled_from(["S1", "Z" * 63, "Z" * 64, "-a", "s\n", "s\u00efte", "s/1", "", "\u0661"])
                if _odd(draw) else _SITES)
    seq = draw(st.sampled_from([0, 2**63 - 1, 2**63, 10**18 - 1, 10**18, -1]) if _odd(draw) else st.integers(0, 10**12))
    if _odd(draw):
        ts = draw(timestamps(limits))
    else:
        ts = _ts_text(draw(st.integers(limits.ts_min_ms + 1, limits.ts_max_ms)), draw(st.sampled_from([0, 3, 6])))
    if _odd(draw):
        value = draw(value_texts(low, high))
    else:
        value = repr(draw(st.floats(low, high)) if high - low < 1e300 else 0.0)
    fields: dict[str, str] = {
        "v": draw(st.sampled_from(["2", "true", "1.0"])) if _odd(draw) else "1",
        "site": json.dumps(site),
        "sensor": json.dumps(sensor),
        "ts": json.dumps(ts),
        "value": value,
        "unit": json.dumps(unit),
        "seq": str(seq),
    }
    form = draw(st.sampled_from(["reordered", "spaced", "escaped"])) if _odd(draw) else "canonical"
    keys = list(KEYS)
    if form == "reordered":
        keys = draw(st.permutations(KEYS))
    if form == "escaped":  # the same text, JSON-escaped: valid JSON, not the canonical form
        fields["site"] = json.dumps(site, ensure_ascii=True).replace("S", "\\u0053")
    sep = ", " if form == "spaced" else ","
    colon = ": " if form == "spaced" else ":"
    return ("{" + sep.join(f'"{k}"{colon}{fields[k]}' for k in keys) + "}").encode()


def _seed() -> int:
    return int(os.environ.get("IOTPIPE_HYPOTHESIS_SEED") or random.SystemRandom().randrange(2**32))


SEED = _seed()
EXAMPLES = int(os.environ.get("IOTPIPE_HYPOTHESIS_EXAMPLES", "1000"))


class Verdicts:
    """Java verdicts by (limits, message), fetched from the probe in bulk: a Flink query costs seconds, a message
    almost nothing. Misses (examples hypothesis makes up while shrinking a failure) are fetched one query each."""

    def __init__(self, probe: Probe) -> None:
        self.probe = probe
        self.known: dict[tuple[Limits, bytes], dict[str, Any]] = {}

    def fetch(self, wanted: list[tuple[Limits, bytes]]) -> None:
        by_limits: dict[Limits, list[bytes]] = {}
        for limits, message in dict.fromkeys(wanted):
            if (limits, message) not in self.known:
                by_limits.setdefault(limits, []).append(message)
        for limits, batch in by_limits.items():
            self.known.update(((limits, m), v) for m, v in zip(batch, self.probe.run(limits, batch), strict=True))

    def of(self, limits: Limits, message: bytes) -> dict[str, Any]:
        self.fetch([(limits, message)])
        return self.known[(limits, message)]


def test_property_java_fast_path_and_reference_decoder_agree(probe: Probe, capsys: pytest.CaptureFixture[str]) -> None:
    """Hypothesis draws the examples twice with the same seed: the first pass only collects them, so their Java
    verdicts come from one Flink query per limits set; the second pass checks each example (and shrinks a failure)."""
    verdicts = Verdicts(probe)
    collected: list[tuple[Limits, bytes]] = []
    counts = {"examples": 0, "fast": 0, "accepted": 0}

    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def collect(data: st.DataObject) -> None:
        limits = data.draw(st.sampled_from(LIMIT_CHOICES), label="limits")
        collected.append((limits, data.draw(messages(limits), label="message")))

    @seed(SEED)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=False,
              suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def agree(data: st.DataObject) -> None:
        limits = data.draw(st.sampled_from(LIMIT_CHOICES), label="limits")
        message = data.draw(messages(limits), label="message")
        verdict = verdicts.of(limits, message)
        counts["examples"] += 1
        counts["fast"] += verdict["site"] is not None
        counts["accepted"] += reference(message, limits) is not None
        assert disagreement(message, verdict, limits) is None, disagreement(message, verdict, limits)

    with capsys.disabled():
        print(f"\nhypothesis: seed {SEED} (rerun: IOTPIPE_HYPOTHESIS_SEED={SEED}), up to {EXAMPLES} examples")
    collect()
    verdicts.fetch(collected)
    queries = probe.batches
    try:
        agree()
    finally:
        with capsys.disabled():
            print(f"hypothesis: seed {SEED}, {counts['examples']} examples checked ({len(set(collected))} distinct "
                  f"messages), {counts['fast']} accepted by the Java fast path, {counts['accepted']} by the decoder; "
                  f"{queries} Flink queries, {probe.batches - queries} more while checking")
    assert counts["fast"] > counts["examples"] // 5  # the property was not vacuous


def test_the_oracle_never_calls_a_rejected_message_fast() -> None:
    """Sanity of the oracle itself: no message the decoder rejects is expected to be fast."""
    for message in corpus():
        if reference(message, DEFAULT_LIMITS) is None:
            assert disagreement(message, {k: None for k in ("site", "sensor", "ts", "value", "seq", "time")},
                                DEFAULT_LIMITS) is None
