"""Every message type is fully validated: the cold decoders (iotcommon.wire) check the compiled JSON Schema and what a
schema cannot say; the hand-written reading check (the hot path) accepts exactly what the reading schema accepts."""

from __future__ import annotations

import json
from typing import Any

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from iotcommon.days import ts_to_ms
from iotcommon.errors import MessageError
from iotcommon.limits import OUTER_LIMITS
from iotcommon.messages import Aggregate, DeadLetter, LateReading, Reading, reading_from_dict
from iotcommon.sensors import SENSORS
from iotcommon.wire import aggregate_from_dict, deadletter_from_dict, late_from_dict, validator

READING = Reading("site-1", "Etot", "2020-01-01T00:15:00Z", 62_400.0, "Wh", 7)
AGGREGATE = Aggregate("site-1", "AggDayDiff[Etot]", "AggDayDiff", "Etot", "2020-01-01", 62_400.0, "Wh", 96, 2,
                      "2019-12-31T22:00:00Z", "2020-01-01T22:00:00Z", "2026-01-01T00:00:00.125Z")
LATE = LateReading(READING, "beyond-allowed-lateness", "2020-01-01", 1_000)
DEAD = DeadLetter.of(MessageError("schema", "bad site"), "iotpipe.readings", 2, 41, b"s/TH1", b"{}",
                     "2026-01-01T00:00:00Z")


def wire(message: Aggregate | LateReading | DeadLetter | Reading) -> dict[str, Any]:
    """What a consumer decodes from the topic."""
    decoded: dict[str, Any] = json.loads(message.encode())
    return decoded


def test_valid_messages_decode_to_what_was_encoded() -> None:
    assert aggregate_from_dict(wire(AGGREGATE)) == AGGREGATE
    assert late_from_dict(wire(LATE)) == LATE
    assert deadletter_from_dict(wire(DEAD)) == DEAD
    without_key = {k: v for k, v in wire(DEAD).items() if k != "key_b64"}  # key_b64 is optional
    assert deadletter_from_dict(without_key).key_b64 is None


BAD_AGGREGATES = [
    {"site": "site-1\n"},  # the trailing newline a $-anchored pattern let through
    {"site": ""},
    {"sensor": "XX9", "name": "AggDayDiff[XX9]"},
    {"name": "AggDay[Etot]"},  # not the name of kind AggDayDiff
    {"kind": "AggDayMax", "name": "AggDayMax[Etot]"},
    {"day": "2020-02-30"},  # the right shape, not a day
    {"day": "2020-1-01"},
    {"revision": 0},
    {"revision": True},
    {"revision": 2.5},
    {"count": -1},
    {"value": "62400"},
    {"value": False},
    {"unit": "kWh"},
    {"window_end": "yesterday"},
    {"emitted_at": "2026-01-01 00:00:00"},
    {"v": 2},
    {"extra": 1},
]


@pytest.mark.parametrize("change", BAD_AGGREGATES, ids=lambda change: repr(change)[:40])
def test_a_bad_aggregate_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(MessageError) as refused:
        aggregate_from_dict({**wire(AGGREGATE), **change})
    assert refused.value.reason == "schema"


def test_an_aggregate_without_a_field_or_with_a_non_finite_value_is_refused() -> None:
    for field in ("site", "revision", "window_start"):
        with pytest.raises(MessageError, match="schema"):
            aggregate_from_dict({k: v for k, v in wire(AGGREGATE).items() if k != field})
    nan = json.loads(AGGREGATE.encode().replace(b"62400.0", b"NaN"))  # Python's json module reads the literal
    with pytest.raises(MessageError, match="finite"):
        aggregate_from_dict(nan)
    with pytest.raises(MessageError, match="schema"):
        aggregate_from_dict([wire(AGGREGATE)])


@pytest.mark.parametrize("change", [
    {"day": "2020-13-01"}, {"late_by_ms": -1}, {"reason": None}, {"reading": {"v": 1}},
    {"reading": {**wire(READING), "site": "site-1\n"}}, {"reading": {**wire(READING), "unit": "C"}},
], ids=lambda change: repr(change)[:40])
def test_a_bad_late_reading_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(MessageError, match="schema"):
        late_from_dict({**wire(LATE), **change})


def test_a_late_reading_beyond_the_outer_limits_is_out_of_range() -> None:
    beyond = {**wire(READING), "ts": "9999-01-01T00:00:00Z"}
    with pytest.raises(MessageError) as refused:
        late_from_dict({**wire(LATE), "reading": beyond})
    assert refused.value.reason == "out-of-range"


@pytest.mark.parametrize("change", [
    {"source_topic": "iotpipe.readings\n"}, {"source_topic": ""}, {"partition": -1}, {"offset": "41"},
    {"reason": "because"}, {"at": "2026-01-01"}, {"payload_b64": None},
], ids=lambda change: repr(change)[:40])
def test_a_bad_dead_letter_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(MessageError, match="schema"):
        deadletter_from_dict({**wire(DEAD), **change})


# --- the hot path: the hand-written reading check against the compiled reading schema --------------------------

def _schema_accepts(obj: Any) -> bool:
    try:
        validator("reading.v1.json")(obj)
    except fastjsonschema.JsonSchemaValueException:
        return False
    return True


def _hand_accepts(obj: Any) -> bool:
    try:
        reading_from_dict(obj, OUTER_LIMITS)
    except MessageError:
        return False
    return True


_DIGITS = st.text("0123456789", min_size=1, max_size=2)
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
TIMESTAMPS = st.one_of(
    st.datetimes().map(lambda d: d.isoformat(timespec="microseconds") + "Z"),
    st.datetimes().map(lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
    st.builds("{}-{}-{}T{}:{}:{}Z".format, st.sampled_from(["2020", "1969", "9000", "0000"]), _DIGITS, _DIGITS,
              _DIGITS, _DIGITS, _DIGITS),
    st.sampled_from(["2020-01-01T00:00:00Z\n", "2020-01-01T00:00:00+00:00", "2020-01-01T00:00:00.1234567Z",
                     "2020-01-01 00:00:00Z", "1970-01-01T00:00:00Z", "9000-01-01T00:00:00Z"]),
    st.text(max_size=30),
)
FIELDS = {
    "v": st.sampled_from([1, 2, 0, True, "1", None]),
    "site": st.one_of(st.builds(str.__add__, st.sampled_from(_ALNUM), st.text(_ALNUM + "_.-", max_size=62)),
                      st.sampled_from(["site\n", "-site", "a" * 64, "", "sité", "s/1"]), st.text(max_size=8)),
    "sensor": st.sampled_from([*SENSORS, "XX9", "", "th1"]),
    "ts": TIMESTAMPS,
    "value": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-10**20, 10**20),
                       st.sampled_from([1e18, -1e18, 10**18 + 1, True, None, "1.5"])),
    "unit": st.sampled_from(["C", "Wh", "l", "count", "K", ""]),
    # seq as a float (1.0) is left out: JSON Schema calls 1.0 an integer, the validator (and Flink's BIGINT) do not
    "seq": st.one_of(st.integers(-3, 2**64), st.sampled_from([2**63 - 1, 2**63, True, None, "7"])),
}


@st.composite
def readings(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly one field off a valid reading (so both checks get past the others), sometimes many; fields dropped or
    added now and then."""
    obj = READING.to_dict()
    for name in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=3, unique=True)):
        obj[name] = draw(FIELDS[name])
    if draw(st.integers(0, 9)) == 0:
        obj.pop(draw(st.sampled_from(sorted(obj))))
    if draw(st.integers(0, 9)) == 0:
        obj["extra"] = 1
    if obj.get("sensor") in SENSORS and draw(st.booleans()):
        obj["unit"] = SENSORS[obj["sensor"]].unit  # keep the unit matching the sensor half of the time
    return obj


def _inside_outer_window(obj: dict[str, Any]) -> bool:
    """The one rule the schema cannot say: the event-time window (ts_min, ts_max] of the outer limits."""
    try:
        ms = ts_to_ms(obj["ts"])
    except (KeyError, TypeError, ValueError):
        return True  # not a timestamp: the schema refuses it on its own
    return OUTER_LIMITS.ts_min_ms < ms <= OUTER_LIMITS.ts_max_ms


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # a loaded machine is slow
@given(readings())
def test_the_hand_written_reading_check_accepts_exactly_what_the_schema_accepts(obj: dict[str, Any]) -> None:
    hand = _hand_accepts(obj)
    if hand and _rounds_onto_the_bound(obj.get("value")):
        return  # the second known difference, see test_an_integer_just_past_the_bound_is_the_second_known_difference
    if hand:
        assert _schema_accepts(obj), obj
    elif _inside_outer_window(obj):
        assert not _schema_accepts(obj), obj


def _rounds_onto_the_bound(value: Any) -> bool:
    """An integer past +-1e18 whose nearest double is within it: the schema compares the integer exactly, the
    validator (like the stream job's DOUBLE column) compares the double."""
    return (isinstance(value, int) and not isinstance(value, bool) and abs(value) > 10**18
            and abs(float(value)) <= 1e18)


def test_an_integer_just_past_the_bound_is_the_second_known_difference() -> None:
    obj = {**READING.to_dict(), "value": 10**18 + 1}  # float(10**18 + 1) == 1e18
    assert _rounds_onto_the_bound(obj["value"])
    assert not _schema_accepts(obj)
    assert _hand_accepts(obj)


def test_a_fraction_written_seq_is_the_one_known_difference() -> None:
    """JSON Schema counts 1.0 as an integer; the validator, like the stream job's BIGINT column, refuses it."""
    obj = {**READING.to_dict(), "seq": 7.0}
    assert _schema_accepts(obj)
    assert not _hand_accepts(obj)
