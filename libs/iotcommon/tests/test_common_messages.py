"""The hand validator in iotcommon.messages agrees with the checked-in JSON Schema."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest
from referencing import Registry, Resource

from iotcommon.errors import MessageError
from iotcommon.messages import (
    SCHEMA_FILES,
    Aggregate,
    DeadLetter,
    LateReading,
    Reading,
    decode_reading,
    load_schema,
    reading_from_dict,
)

GOOD = Reading("site-0001", "TH1", "2020-01-01T00:15:00Z", 13.5, "C", 1)


def validator(name: str) -> jsonschema.Draft202012Validator:
    registry: Registry = Registry()
    for filename in SCHEMA_FILES:
        registry = registry.with_resource(filename, Resource.from_contents(load_schema(filename)))
    return jsonschema.Draft202012Validator(load_schema(name), registry=registry)


def test_every_schema_is_a_valid_draft_2020_12_schema() -> None:
    for filename in SCHEMA_FILES:
        jsonschema.Draft202012Validator.check_schema(load_schema(filename))


def test_encoded_messages_validate_against_their_schemas() -> None:
    agg = Aggregate("s", "AggDay[TH1]", "AggDay", "TH1", "2020-01-01", 15.0, "C", 96, 1,
                    "2019-12-31T22:00:00Z", "2020-01-01T22:00:00Z", "2026-01-01T00:00:00Z")
    late = LateReading(GOOD, "beyond-allowed-lateness", "2020-01-01", 5)
    dead = DeadLetter.of(MessageError("unparsable", "x"), "t", 0, 7, None, b"\xff", "2026-01-01T00:00:00Z")
    for name, message in (("reading.v1.json", GOOD), ("aggregate.v1.json", agg), ("late.v1.json", late),
                          ("deadletter.v1.json", dead)):
        validator(name).validate(json.loads(message.encode()))
    assert decode_reading(GOOD.encode()) == GOOD
    assert dead.payload == b"\xff"


BAD = [
    (b"not json", "unparsable"),
    (b"\xff\xfe", "unparsable"),
    (None, "unparsable"),
    (b"[1,2]", "schema"),
    (json.dumps({**GOOD.to_dict(), "sensor": "XX9"}).encode(), "unknown-sensor"),
    (json.dumps({**GOOD.to_dict(), "value": math.nan}).encode(), "non-finite"),
    (json.dumps({**GOOD.to_dict(), "value": math.inf}).encode(), "non-finite"),
    (json.dumps({**GOOD.to_dict()}).encode().replace(b"13.5", b"1e999"), "non-finite"),
    (json.dumps({**GOOD.to_dict(), "value": 10**400}).encode(), "non-finite"),
    (json.dumps({**GOOD.to_dict(), "value": 1e308}).encode(), "out-of-range"),
    (json.dumps({**GOOD.to_dict(), "value": -1.5e18}).encode(), "out-of-range"),
    (json.dumps({**GOOD.to_dict(), "site": "site-0001\n"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "site": "site-0001\r"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "ts": "2020-01-01T00:15:00Z\n"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "ts": "\u0662\u0660\u0662\u0660-01-01T00:15:00Z"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "seq": 2**63}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "value": "12"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "ts": "2020-01-01 00:15"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "ts": "2020-01-01T00:15:00+02:00"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "unit": "Wh"}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "seq": -1}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "v": 2}).encode(), "schema"),
    (json.dumps({**GOOD.to_dict(), "extra": 1}).encode(), "schema"),
    (json.dumps({k: v for k, v in GOOD.to_dict().items() if k != "seq"}).encode(), "schema"),
]


@pytest.mark.parametrize(("payload", "reason"), BAD)
def test_bad_readings_are_refused_with_a_reason(payload: bytes | None, reason: str) -> None:
    with pytest.raises(MessageError) as info:
        decode_reading(payload)
    assert info.value.reason == reason


def _strict_json(payload: bytes) -> object:
    """RFC 8259 JSON: NaN and Infinity are not JSON (Python's json module accepts them unless told not to)."""

    def refuse(literal: str) -> object:
        raise ValueError(f"{literal} is not JSON")

    return json.loads(payload, parse_constant=refuse)


@pytest.mark.parametrize(("payload", "reason"), [b for b in BAD if b[0] not in (None, b"not json", b"\xff\xfe")])
def test_the_json_schema_also_refuses_them(payload: bytes, reason: str) -> None:
    """Each one is not JSON at all (NaN, Infinity literals) or JSON that the schema refuses (1e999 parses to an
    infinite number, beyond the schema's maximum)."""
    try:
        obj = _strict_json(payload)
    except ValueError:
        assert reason == "non-finite"  # only the NaN/Infinity literals are refused here
        return
    assert not validator("reading.v1.json").is_valid(obj)


def test_a_trailing_newline_is_refused_by_the_schema_and_the_validator_alike() -> None:
    obj = {**GOOD.to_dict(), "site": "site-0001\n"}
    assert not validator("reading.v1.json").is_valid(obj)
    with pytest.raises(MessageError, match="bad site"):
        decode_reading(json.dumps(obj).encode())


# Plausibility limits the schema cannot express (they are configurable): the default ranges and the window.
OUT_OF_RANGE = [
    ({"value": 150.00000000000003}, "above the TH1 maximum 150.0"),
    ({"value": -100.00000000000001}, "below the TH1 minimum -100.0"),
    ({"sensor": "Mov1", "unit": "count", "value": 1001}, "above the Mov1 maximum 1000.0"),
    ({"ts": "0001-01-01T00:00:00Z"}, "not after the window start 1970-01-01T00:00:00Z"),
    ({"ts": "1970-01-01T00:00:00.000999Z"}, "not after the window start"),
    ({"ts": "9999-12-31T23:59:59.999999Z"}, "after the window end 2200-01-01T00:00:00Z"),
    ({"ts": "2200-01-01T00:00:00.001Z"}, "after the window end"),
]


@pytest.mark.parametrize(("change", "detail"), OUT_OF_RANGE)
def test_readings_beyond_the_limits_are_out_of_range_with_the_bound_named(change: dict[str, object],
                                                                           detail: str) -> None:
    with pytest.raises(MessageError) as info:
        decode_reading(json.dumps({**GOOD.to_dict(), **change}).encode())
    assert info.value.reason == "out-of-range"
    assert detail in info.value.detail


@pytest.mark.parametrize("change", [{"value": 150.0}, {"value": -100.0}, {"value": -0.0}, {"value": 5e-324},
                                    {"ts": "1970-01-01T00:00:00.001Z"}, {"ts": "2200-01-01T00:00:00Z"},
                                    {"ts": "2200-01-01T00:00:00.000999Z"}, {"ts": "2020-02-29T23:59:59Z"},
                                    {"seq": 2**63 - 1}])
def test_readings_at_the_bounds_are_accepted(change: dict[str, object]) -> None:
    reading = decode_reading(json.dumps({**GOOD.to_dict(), **change}).encode())
    assert reading.to_dict() == {**GOOD.to_dict(), **change}


def test_the_wire_contract_check_uses_the_outer_limits_that_no_configuration_exceeds() -> None:
    """reading_from_dict (raw and late topics, already validated by the job) accepts any configurable range."""
    assert reading_from_dict({**GOOD.to_dict(), "value": 1e15, "ts": "2500-01-01T00:00:00Z"}).value == 1e15
    with pytest.raises(MessageError, match="out-of-range"):
        reading_from_dict({**GOOD.to_dict(), "value": 1.5e18})
