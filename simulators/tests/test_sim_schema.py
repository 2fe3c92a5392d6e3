"""Every message the simulator produces validates against the JSON Schema reading.v1.json (pure, no Kafka)."""

from __future__ import annotations

import json
from datetime import datetime
from zoneinfo import ZoneInfo

import jsonschema
from referencing import Registry, Resource

from iot_simulators.encoding import Encoder, site_id
from iot_simulators.engine import Simulation
from iot_simulators.late import parse_rules
from iot_simulators.timeline import Timeline
from iotcommon import days
from iotcommon.messages import SCHEMA_FILES, decode_reading, load_schema

TZ = ZoneInfo("Europe/Athens")


def validator() -> jsonschema.Draft202012Validator:
    registry: Registry = Registry()
    for filename in SCHEMA_FILES:
        registry = registry.with_resource(filename, Resource.from_contents(load_schema(filename)))
    return jsonschema.Draft202012Validator(load_schema("reading.v1.json"), registry=registry,
                                           format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)


def test_every_message_validates_against_the_schema_and_the_shared_decoder() -> None:
    # 7 days over the end of DST (25 Oct), 3 sites, late delays so late readings (2 d, 5 h) and drained ones (10 d)
    # are included
    sim = Simulation(Timeline(datetime(2020, 10, 20, tzinfo=TZ), TZ), [1, 2, 99999], 21,
                     parse_rules(("20:2d", "120:10d", "7:5h")))
    enc = Encoder([site_id(n) for n in sim.site_numbers])
    msgs = enc.encode_all(sim.run(7 * 96)) + enc.encode_blocks(sim.drain())
    check = validator()
    sensors = set()
    devices = set()
    for key, payload in msgs:
        obj = json.loads(payload)
        errors = list(check.iter_errors(obj))
        assert not errors, (payload, errors)
        reading = decode_reading(payload)
        assert key.decode() == reading.site  # the producer contract: key = site
        assert reading.ts == days.iso_z(days.parse_iso(reading.ts))  # canonical RFC 3339 UTC with Z
        assert payload == payload.strip() and b" " not in payload  # compact
        sensors.add(reading.sensor)
        devices.add((reading.site, reading.sensor))
    assert len(sensors) == 10
    assert len(devices) == 30  # 3 sites x 10 sensors
    assert {k for k, _ in msgs} == {site_id(n).encode() for n in [1, 2, 99999]}


def test_values_are_encoded_exactly_with_three_decimals() -> None:
    from iot_simulators.engine import Block

    enc = Encoder(["a", "b", "c", "d"])
    block = Block("TH1", "2020-01-01T00:15:00Z", 3, [12345, 0, 7, -1500])  # not made by the models: encoder only
    values = [decode_reading(p).value for _, p in enc.encode_blocks([block])]
    assert values == [12.345, 0.0, 0.007, -1.5]
