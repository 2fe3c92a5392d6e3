"""iotcommon.sensors: the aggregate kinds are the aggregate schema's, and each sensor has the series of its rule."""

from __future__ import annotations

from iotcommon.messages import load_schema
from iotcommon.sensors import AGGREGATE_KINDS, REST_PARTS, SENSORS, aggregate_names


def test_the_aggregate_kinds_are_the_schemas() -> None:
    assert set(AGGREGATE_KINDS) == set(load_schema("aggregate.v1.json")["properties"]["kind"]["enum"])


def test_each_sensor_has_the_aggregate_series_of_its_rule() -> None:
    daily = {s: (f"AggDay[{s}]",) for s in ("TH1", "TH2", "HVAC1", "HVAC2", "MiAC1", "MiAC2", "W1")}
    totals = {s: (f"AggDayDiff[{s}]", f"AggDayRest[{s}]") for s in ("Etot", "Wtot")}
    assert {s: aggregate_names(s) for s in SENSORS} == {**daily, **totals, "Mov1": ("AggDayMov[Mov1]",)}
    assert set(totals) == set(REST_PARTS)  # a rest series exists only where the parts are known
