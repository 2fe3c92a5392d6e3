"""The plausibility limits: settings format, defaults, the window's bounds and the JVM wire form."""

from __future__ import annotations

import pytest

from iotcommon.errors import ConfigError
from iotcommon.limits import (
    DEFAULT_LIMITS,
    DEFAULT_RANGES,
    OUTER_LIMITS,
    Limits,
    format_value_ranges,
    ms_to_ts,
    parse_value_ranges,
    ts_to_ms,
)
from iotcommon.sensors import SENSORS


def test_every_sensor_has_a_default_range_that_holds_the_seed_values() -> None:
    assert set(DEFAULT_RANGES) == set(SENSORS)
    seed_values = {"TH1": (6.0, 38.5), "HVAC2": (0.0, 200.0), "MiAC2": (0.0, 200.0), "W1": (-0.02, 0.8),
                   "Etot": (62_400.0, 62_400.0 * 365 * 200), "Wtot": (1_000.0, 1_000.0 + 120 * 365 * 200),
                   "Mov1": (1.0, 1.0)}
    for sensor, (low, high) in seed_values.items():
        assert DEFAULT_LIMITS.value_problem(sensor, low) is None
        assert DEFAULT_LIMITS.value_problem(sensor, high) is None


def test_the_default_window_is_1970_to_2200() -> None:
    assert (DEFAULT_LIMITS.ts_min_ms, DEFAULT_LIMITS.ts_max_ms) == (0, 7_258_118_400_000)  # 2200-01-01, by `date -d`


def test_settings_override_the_named_sensors_only() -> None:
    limits = Limits.from_settings("W1=0:1e6, TH1=-80:120", "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
    assert limits.range_of("W1") == (0.0, 1e6)
    assert limits.range_of("TH1") == (-80.0, 120.0)
    assert limits.range_of("TH2") == DEFAULT_RANGES["TH2"]
    assert limits.ts_min_ms == 946_684_800_000


@pytest.mark.parametrize(("text", "complaint"), [
    ("W1", "is not SENSOR=LOW:HIGH"),
    ("W1=5", "is not SENSOR=LOW:HIGH"),
    ("XX=0:1", "unknown sensor 'XX'"),
    ("W1=0:1,W1=0:2", "W1 is given twice"),
    ("W1=a:1", "bounds must be numbers"),
    ("W1=0:inf", "within -1e18 and 1e18"),
    ("W1=0:nan", "within -1e18 and 1e18"),
    ("W1=0:1e19", "within -1e18 and 1e18"),
    ("W1=5:1", "the low bound is above the high bound"),
])
def test_malformed_ranges_are_config_errors(text: str, complaint: str) -> None:
    with pytest.raises(ConfigError, match="IOTPIPE_VALUE_RANGES") as info:
        parse_value_ranges(text)
    assert complaint in str(info.value)


@pytest.mark.parametrize(("ts_min", "ts_max", "complaint"), [
    ("2020-01-01", "2200-01-01T00:00:00Z", "IOTPIPE_TS_MIN"),
    ("1969-12-31T23:59:59Z", "2200-01-01T00:00:00Z", "IOTPIPE_TS_MIN"),
    ("1970-01-01T00:00:00Z", "9999-12-31T00:00:00Z", "IOTPIPE_TS_MAX"),
    ("2100-01-01T00:00:00Z", "2100-01-01T00:00:00Z", "must be before"),
])
def test_a_window_beyond_the_outer_limits_or_empty_is_a_config_error(ts_min: str, ts_max: str,
                                                                     complaint: str) -> None:
    with pytest.raises(ConfigError, match=complaint):
        Limits.from_settings("", ts_min, ts_max)


def test_ranges_text_round_trips() -> None:
    ranges = {"W1": (0.0, 1e6), "TH1": (-80.5, 120.0)}
    assert parse_value_ranges(format_value_ranges(ranges)) == ranges


def test_the_window_excludes_its_start_and_includes_its_end_at_millisecond_precision() -> None:
    limits = Limits.from_settings("", "2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z")
    start, end = limits.ts_min_ms, limits.ts_max_ms
    assert limits.ts_problem("x", start) is not None
    assert limits.ts_problem("x", start + 1) is None
    assert limits.ts_problem("x", end) is None
    assert limits.ts_problem("x", end + 1) is not None
    assert ts_to_ms("2100-01-01T00:00:00.000999Z") == end  # sub-millisecond digits are truncated
    assert ts_to_ms("1969-12-31T23:59:59.9995Z") == -1  # floor, like Java's truncated LocalDateTime


def test_value_bounds_are_inclusive_and_name_the_bound() -> None:
    assert DEFAULT_LIMITS.value_problem("TH1", 150.0) is None
    assert DEFAULT_LIMITS.value_problem("TH1", -100.0) is None
    assert "above the TH1 maximum 150.0" in str(DEFAULT_LIMITS.value_problem("TH1", 150.5))
    assert "below the TH1 minimum -100.0" in str(DEFAULT_LIMITS.value_problem("TH1", -101.0))


def test_the_wire_form_round_trips_exactly() -> None:
    limits = Limits.from_settings("W1=0.1:0.30000000000000004,TH1=-1e18:1e18", "1970-01-01T00:00:00.001Z",
                                  "8999-12-31T23:59:59.999Z")
    assert Limits.from_wire(limits.wire()) == limits
    assert limits.wire().startswith("ts=1:")
    assert "W1=0.1:0.30000000000000004" in limits.wire()


def test_the_outer_limits_contain_every_configurable_limit() -> None:
    assert ms_to_ts(OUTER_LIMITS.ts_max_ms) == "9000-01-01T00:00:00Z"
    assert all((low, high) == (-1e18, 1e18) for _, low, high in OUTER_LIMITS.ranges)
