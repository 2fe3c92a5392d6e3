"""HBase row keys sort in time order within a series and ranges select exactly the asked interval."""

from __future__ import annotations

import zlib

from iotcommon.hbase_layout import (
    aggregate_key,
    aggregate_range,
    deadletter_key,
    reading_key,
    reading_range,
    series_prefix,
)


def test_reading_keys_sort_by_time_then_seq_within_a_series() -> None:
    keys = [reading_key("s1", "TH1", ts, seq) for ts, seq in [(5, 0), (1000, 2), (1000, 10), (99_999, 1)]]
    assert keys == sorted(keys)
    assert all(k.startswith(series_prefix("s1", "TH1")) for k in keys)


def test_a_reading_key_is_salt_site_sensor_then_fixed_width_time_and_seq() -> None:
    salt = f"{zlib.crc32(b'site-1/TH1') % 16:02x}".encode()  # the layout rule, computed here independently
    assert reading_key("site-1", "TH1", 1_577_837_700_000, 7) == salt + b"|site-1|TH1|1577837700000|0000000007"
    assert reading_key("site-1", "TH1", 5, 0) == salt + b"|site-1|TH1|0000000000005|0000000000"


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


def test_keys_refuse_numbers_that_would_break_byte_order() -> None:
    import pytest

    for ts, seq in [(-1, 0), (10**13, 0), (0, -1), (0, 10**10), (True, 0), (0, False)]:
        with pytest.raises(ValueError, match="outside"):
            reading_key("s1", "TH1", ts, seq)
    with pytest.raises(ValueError, match="outside"):
        deadletter_key("iotpipe.raw", 0, -5)
    assert reading_key("s1", "TH1", 10**13 - 1, 10**10 - 1).endswith(b"9999999999999|9999999999")


def test_deadletter_keys_are_per_source_partition_in_offset_order() -> None:
    keys = [deadletter_key("iotpipe.readings", 2, off) for off in (0, 9, 10, 12345)]
    assert keys == sorted(keys)
    assert deadletter_key("iotpipe.readings", 2, 7) != deadletter_key("iotpipe.readings", 3, 7)


def test_families_keep_one_version_a_row_bloom_filter_and_the_block_cache_and_add_what_is_asked() -> None:
    from iotcommon.hbase_layout import families

    base = {"max_versions": 1, "bloom_filter_type": "ROW", "block_cache_enabled": True}
    assert families() == {"d": base}
    assert families(3600, 2, "GZ") == {"d": {**base, "max_versions": 2, "time_to_live": 3600, "compression": "GZ"}}
    assert families(0, 1, "NONE") == {"d": base}


def test_ttl_seconds_reads_forever_as_zero() -> None:
    from iotcommon.hbase_layout import ttl_seconds

    assert ttl_seconds({"time_to_live": 2**31 - 1}) == 0  # HConstants.FOREVER
    assert ttl_seconds({"time_to_live": -1}) == 0
    assert ttl_seconds({}) == 0
    assert ttl_seconds({"time_to_live": 60}) == 60
