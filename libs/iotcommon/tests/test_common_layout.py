"""HBase row keys sort in time order within a series and ranges select exactly the asked interval."""

from __future__ import annotations

from iotcommon.hbase_layout import aggregate_key, aggregate_range, reading_key, reading_range, series_prefix


def test_reading_keys_sort_by_time_then_seq_within_a_series() -> None:
    keys = [reading_key("s1", "TH1", ts, seq) for ts, seq in [(5, 0), (1000, 2), (1000, 10), (99_999, 1)]]
    assert keys == sorted(keys)
    assert all(k.startswith(series_prefix("s1", "TH1")) for k in keys)


def test_reading_range_is_inclusive_and_tight() -> None:
    start, stop = reading_range("s1", "W1", 1000, 2000)
    inside = [reading_key("s1", "W1", t, 3) for t in (1000, 1500, 2000)]
    outside = [reading_key("s1", "W1", t, 0) for t in (999, 2001)] + [reading_key("s1", "W2", 1500, 0)]
    assert all(start <= k < stop for k in inside)
    assert not any(start <= k < stop for k in outside)


def test_aggregate_range_covers_whole_days() -> None:
    start, stop = aggregate_range("s1", "AggDay[TH1]", "2020-01-02", "2020-01-03")
    assert start <= aggregate_key("s1", "AggDay[TH1]", "2020-01-03") < stop
    assert not start <= aggregate_key("s1", "AggDay[TH1]", "2020-01-04") < stop
    assert not start <= aggregate_key("s1", "AggDay[TH1]", "2020-01-01") < stop
