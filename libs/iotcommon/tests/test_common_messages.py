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


@pytest.mark.parametrize(("payload", "reason"), [b for b in BAD if b[0] not in (None, b"not json", b"\xff\xfe")])
def test_the_json_schema_also_refuses_them(payload: bytes, reason: str) -> None:
    obj = json.loads(payload)
    if reason == "non-finite":
        return  # JSON Schema has no notion of NaN; the schema's "number" plus our encoder's allow_nan=False cover it
    assert not validator("reading.v1.json").is_valid(obj)
