"""Raw readings in the canonical form (compact JSON in Reading.encode's field order) are mapped without decoding
them into a dict: that shortcut must give every record the row the full path gives it, valid or not. Expected keys
are spelled out from the layout rule ``<crc32(site/sensor) % 16 as 2 hex>|<site>|<sensor>|<ts_ms:13>|<seq:10>``;
the property test's reference is iotcommon's reference validator (``decode_reading`` with the outer limits, the
json module) and that rule, not the code under test."""

from __future__ import annotations

import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sync_fakes import FakeMessage

from hbase_sync.mapping import MESSAGE, Mapper, canonical_raw_key
from iotcommon.errors import MessageError
from iotcommon.limits import OUTER_LIMITS
from iotcommon.messages import Reading, decode_reading
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics

T = Topics("p1")
MAPPER = Mapper(T)


def compact(**over: Any) -> bytes:
    """A reading in the canonical form: the fields in Reading.encode's order, no spaces."""
    obj = {"v": 1, "site": "s1", "sensor": "TH1", "ts": "2020-01-01T00:15:00Z", "value": 21.5, "unit": "C", "seq": 7}
    return json.dumps({**obj, **over}, separators=(",", ":")).encode()


def key(site: str, sensor: str, ts_ms: int, seq: int) -> bytes:
    salt = zlib.crc32(f"{site}/{sensor}".encode()) % 16
    return f"{salt:02x}|{site}|{sensor}|{ts_ms:013d}|{seq:010d}".encode()


def map_raw(payload: bytes) -> tuple[str, bytes | None, str | None]:
    """(table, row key or None for a dead letter, rejection reason)."""
    row = MAPPER.map(FakeMessage(T.raw, 0, 5, payload))
    if row.rejected is not None:
        return row.table, None, row.rejected
    assert row.cells == {MESSAGE: payload}
    return row.table, row.key, None


T0 = 1_577_837_700_000  # 2020-01-01T00:15:00Z

VALID = [
    (compact(), key("s1", "TH1", T0, 7)),
    (compact(value=-0.5), key("s1", "TH1", T0, 7)),
    (compact(value=3), key("s1", "TH1", T0, 7)),  # an integer value
    (compact(value=1e-05), key("s1", "TH1", T0, 7)),  # exponent: not the fast form, still valid
    (compact(sensor="W1", unit="l", value=999_999_999_999_999.9), key("s1", "W1", T0, 7)),
    (compact(sensor="Etot", unit="Wh", value=1e18), key("s1", "Etot", T0, 7)),  # the outer bound, inclusive
    (compact(ts="2020-01-01T00:15:00.123999Z"), key("s1", "TH1", T0 + 123, 7)),  # floored to the millisecond
    (compact(seq=9_999_999_999), key("s1", "TH1", T0, 9_999_999_999)),
    (compact(site="Site-9.a_b"), key("Site-9.a_b", "TH1", T0, 7)),
    (compact(ts="2286-11-20T17:46:39Z"), key("s1", "TH1", 9_999_999_999_000, 7)),  # the last 13-digit second
    (json.dumps(json.loads(compact())).encode(), key("s1", "TH1", T0, 7)),  # with spaces: the full path
]


@pytest.mark.parametrize(("payload", "expected"), VALID)
def test_a_valid_raw_reading_gets_its_reading_row(payload: bytes, expected: bytes) -> None:
    assert map_raw(payload) == ("raw", expected, None)


INVALID = [
    (compact(sensor="XX9"), "unknown-sensor"),
    (compact(unit="Wh"), "schema"),  # not TH1's unit
    (compact(v=2), "schema"),
    (compact(site="a/b"), "schema"),
    (compact(site="s" * 64), "schema"),  # 64 characters: one too many
    (compact(ts="2020-13-01T00:00:00Z"), "schema"),  # no such month
    (compact(ts="2020-02-30T00:00:00Z"), "schema"),
    (compact(ts="1970-01-01T00:00:00Z"), "out-of-range"),  # the window's start is exclusive
    (compact(ts="9000-01-01T00:00:00.001Z"), "out-of-range"),
    (compact(ts="2286-11-20T17:46:40Z"), "unmappable"),  # 14-digit epoch ms would break the key order
    (compact(seq=10**10), "unmappable"),
    (compact(seq=-1), "schema"),
    (compact(sensor="Etot", unit="Wh", value=2e18), "out-of-range"),
    (compact()[:-1] + b',"x":1}', "schema"),
    (compact() + b" x", "unparsable"),
    (compact().replace(b'"C"', b'"\\u0043x"'), "schema"),  # an escaped unit that is not C
]


@pytest.mark.parametrize(("payload", "reason"), INVALID)
def test_an_invalid_raw_reading_in_the_canonical_form_is_still_a_dead_letter(payload: bytes, reason: str) -> None:
    assert map_raw(payload) == ("deadletters", None, reason)


def test_the_shortcut_takes_only_valid_readings_in_the_canonical_form() -> None:
    assert canonical_raw_key(compact()) == key("s1", "TH1", T0, 7)
    assert canonical_raw_key(compact(value=1e-05)) is None  # Python writes it with an exponent
    assert canonical_raw_key(json.dumps(json.loads(compact())).encode()) is None  # spaces
    assert all(canonical_raw_key(payload) is None for payload, _ in INVALID)


def test_an_escaped_unit_that_decodes_to_the_right_one_is_valid() -> None:
    assert map_raw(compact().replace(b'"C"', b'"\\u0043"')) == ("raw", key("s1", "TH1", T0, 7), None)


def reference(payload: bytes) -> tuple[str, bytes | None, str | None]:
    """What the row must be, from iotcommon's reference validator and the key rule."""
    try:
        r = decode_reading(payload, OUTER_LIMITS)
    except MessageError as exc:
        return "deadletters", None, exc.reason
    ts_ms = _ms(r.ts)
    if ts_ms >= 10**13 or r.seq >= 10**10:
        return "deadletters", None, "unmappable"
    return "raw", key(r.site, r.sensor, ts_ms, r.seq), None


def _ms(ts: str) -> int:
    return (datetime.fromisoformat(ts) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


readings = st.builds(
    lambda site, sensor, ts_s, frac, value, seq: Reading(site, sensor, _iso(ts_s, frac), value, SENSORS[sensor].unit,
                                                         seq),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,70}", fullmatch=True),
    st.sampled_from(sorted(SENSORS)),
    st.integers(-10**9, 10**10 + 10**9),
    st.sampled_from(["", ".5", ".123", ".123999"]),
    st.one_of(st.floats(-1e6, 1e6), st.floats(allow_nan=False, allow_infinity=False),
              st.integers(-10**20, 10**20).map(float)),
    st.integers(0, 2 * 10**10),
)


def _iso(seconds: int, frac: str) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"


@settings(max_examples=400, deadline=None)
@given(readings, st.integers(0, 200), st.sampled_from([b"", b"0", b"-", b"\\", b'"', b"1e5", b" "]))
def test_every_reading_and_every_small_corruption_of_it_maps_as_the_reference_says(
    reading: Reading, at: int, insert: bytes
) -> None:
    try:
        payload = reading.encode()
    except ValueError:  # not encodable (never here: the floats are finite)
        return
    assert map_raw(payload) == reference(payload)
    corrupted = payload[:at] + insert + payload[at:]
    assert map_raw(corrupted) == reference(corrupted)
