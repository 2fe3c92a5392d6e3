"""Reading one section of an IoTPipeline's spec (a plain mapping) into a frozen dataclass. Pure.

Every section's dataclass holds its defaults, once: ``given`` returns only the fields the spec sets, and the dataclass
fills in the rest. The CRD repeats the defaults for `kubectl explain`; test_op_spec.py keeps both in step.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from iotcommon.errors import ConfigError


class InvalidSpec(ConfigError):
    """The spec passed the CRD schema but cannot be reconciled as it is (Ready=False reason InvalidSpec, no retry)."""


#: CR key -> (dataclass field, conversion)
Keys = Mapping[str, tuple[str, Callable[[Any], Any]]]


def section(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    """``raw[key]`` as a mapping ({} when absent); ``where`` names ``raw`` in the message."""
    value = raw.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{where}.{key} must be an object" if where else f"{key} must be an object")
    return value


def given(raw: Mapping[str, Any], keys: Keys) -> dict[str, Any]:
    """The dataclass fields ``raw`` sets (not null), converted; the others keep the dataclass defaults."""
    return {attr: convert(raw[key]) for key, (attr, convert) in keys.items() if raw.get(key) is not None}


def optional_str(value: Any) -> str | None:
    """An optional string field: None or "" mean not set."""
    return str(value) if value else None
