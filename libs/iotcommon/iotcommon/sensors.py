"""The device catalogue: which sensors a site has, their units, cadences and daily aggregation rule."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Rule(StrEnum):
    """How a sensor's readings fold into a daily aggregate."""

    MEAN = "mean"  # AggDay = mean of the day's readings
    SUM = "sum"  # AggDay = sum of the day's readings
    CUMULATIVE = "cumulative"  # AggDayDiff = end-of-day reading minus the previous day's
    COUNT = "count"  # AggDayMov = number of events


@dataclass(frozen=True)
class Sensor:
    name: str
    kind: str  # temperature | energy | water | motion
    unit: str
    rule: Rule
    every_15_min: bool  # False: daily (cumulative) or event-driven (motion)


SENSORS: dict[str, Sensor] = {
    s.name: s
    for s in (
        Sensor("TH1", "temperature", "C", Rule.MEAN, True),
        Sensor("TH2", "temperature", "C", Rule.MEAN, True),
        Sensor("HVAC1", "energy", "Wh", Rule.SUM, True),
        Sensor("HVAC2", "energy", "Wh", Rule.SUM, True),
        Sensor("MiAC1", "energy", "Wh", Rule.SUM, True),
        Sensor("MiAC2", "energy", "Wh", Rule.SUM, True),
        Sensor("W1", "water", "l", Rule.SUM, True),
        Sensor("Etot", "energy", "Wh", Rule.CUMULATIVE, False),
        Sensor("Wtot", "water", "l", Rule.CUMULATIVE, False),
        Sensor("Mov1", "motion", "count", Rule.COUNT, False),
    )
}

# AggDayRest[total] = AggDayDiff[total] - sum of AggDay[part] for these parts.
REST_PARTS: dict[str, tuple[str, ...]] = {
    "Etot": ("HVAC1", "HVAC2", "MiAC1", "MiAC2"),
    "Wtot": ("W1",),
}


# The daily aggregate kinds (the aggregate schema's "kind"), and those the stream job emits for each rule.
AGGREGATE_KINDS = ("AggDay", "AggDayDiff", "AggDayRest", "AggDayMov")
KINDS_OF_RULE: dict[Rule, tuple[str, ...]] = {
    Rule.MEAN: ("AggDay",),
    Rule.SUM: ("AggDay",),
    Rule.CUMULATIVE: ("AggDayDiff", "AggDayRest"),
    Rule.COUNT: ("AggDayMov",),
}


def aggregate_name(kind: str, sensor: str) -> str:
    """The seed's naming, kept for users: AggDay[TH1], AggDayDiff[Etot], AggDayRest[Wtot], AggDayMov[Mov1]."""
    return f"{kind}[{sensor}]"


def aggregate_names(sensor: str) -> tuple[str, ...]:
    """The aggregate series of one sensor, e.g. Etot -> (AggDayDiff[Etot], AggDayRest[Etot])."""
    return tuple(aggregate_name(kind, sensor) for kind in KINDS_OF_RULE[SENSORS[sensor].rule])
