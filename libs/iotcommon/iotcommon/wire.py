"""Decoders of the cold message types: aggregates, late readings, dead letters (the low-volume topics).

Each message is checked against its JSON Schema (``schemas/*.v1.json``, compiled once with fastjsonschema, formats
included), then for what a schema cannot say: a real calendar day, a finite value, a name that matches its kind and
sensor, the plausibility limits of a late reading. A message that fails raises ``MessageError("schema", ...)``.

fastjsonschema is the one import of iotcommon outside the standard library, and only this module has it: the stream job
and the simulators only encode these messages (``iotcommon.messages``, stdlib) and do not need it. Readings, the hot
path, keep the hand-written check of ``iotcommon.messages.reading_from_dict``; a test checks that it accepts exactly
what the reading schema accepts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from datetime import date
from typing import Any

import fastjsonschema

from iotcommon.errors import MessageError
from iotcommon.messages import (
    SCHEMA_FILES,
    Aggregate,
    DeadLetter,
    LateReading,
    load_schema,
    reading_from_dict,
)
from iotcommon.sensors import aggregate_name


@functools.cache
def validator(filename: str) -> Callable[[Any], Any]:
    """The compiled schema ``filename``; its ``$ref`` to another schema file resolves to the checked-in copy."""
    by_id = {schema["$id"]: schema for schema in map(load_schema, SCHEMA_FILES)}
    compiled: Callable[[Any], Any] = fastjsonschema.compile(load_schema(filename),
                                                            handlers={"https": by_id.__getitem__})
    return compiled


def check(filename: str, obj: Any) -> None:
    """Raise MessageError("schema", <the first violation>) unless ``obj`` is valid against schema ``filename``."""
    try:
        validator(filename)(obj)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise MessageError("schema", f"{filename}: {exc.message}") from None


def _day(text: str, what: str) -> None:
    try:
        date.fromisoformat(text)
    except ValueError:
        raise MessageError("schema", f"{what} {text!r} is not a calendar day") from None


def aggregate_from_dict(obj: Any) -> Aggregate:
    check("aggregate.v1.json", obj)
    if not math.isfinite(obj["value"]):  # JSON has no NaN, but Python's json module reads the literal
        raise MessageError("schema", f"aggregate value must be a finite number, got {obj['value']!r}")
    if obj["name"] != aggregate_name(obj["kind"], obj["sensor"]):
        raise MessageError("schema", f"aggregate name {obj['name']!r} does not match kind {obj['kind']} and sensor "
                           f"{obj['sensor']}")
    _day(obj["day"], "aggregate day")
    return Aggregate(**{k: v for k, v in obj.items() if k != "v"})


def late_from_dict(obj: Any) -> LateReading:
    check("late.v1.json", obj)
    _day(obj["day"], "late reading day")
    return LateReading(reading_from_dict(obj["reading"]), obj["reason"], obj["day"], obj["late_by_ms"])


def deadletter_from_dict(obj: Any) -> DeadLetter:
    check("deadletter.v1.json", obj)
    fields = {"key_b64": None, **{k: v for k, v in obj.items() if k != "v"}}
    return DeadLetter(**fields)
