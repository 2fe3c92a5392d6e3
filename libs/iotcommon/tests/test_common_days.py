"""The day rule: (D 00:00, D+1 00:00] local, DST-correct."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from iotcommon.days import day_end, day_length, day_of, day_of_ms, day_start, iso_z, parse_iso, to_ms, zone

ATHENS = zone("Europe/Athens")


def test_midnight_reading_closes_the_previous_day() -> None:
    midnight = datetime(2020, 1, 2, 0, 0, tzinfo=ATHENS)
    assert day_of(midnight, ATHENS) == date(2020, 1, 1)
    assert day_of(midnight + timedelta(minutes=15), ATHENS) == date(2020, 1, 2)
    assert day_of_ms(to_ms(midnight), ATHENS) == date(2020, 1, 1)
    assert day_of_ms(to_ms(midnight) + 1, ATHENS) == date(2020, 1, 2)


def test_dst_days_last_23_and_25_hours() -> None:
    assert day_length(date(2020, 3, 29), ATHENS) == timedelta(hours=23)
    assert day_length(date(2020, 10, 25), ATHENS) == timedelta(hours=25)
    assert day_length(date(2020, 6, 1), ATHENS) == timedelta(hours=24)


def test_quarter_readings_per_day_follow_the_zone() -> None:
    def quarters(day: date) -> int:
        t, n = day_start(day, ATHENS) + timedelta(minutes=15), 0
        while t <= day_end(day, ATHENS):
            assert day_of(t, ATHENS) == day
            t, n = t + timedelta(minutes=15), n + 1
        return n

    assert quarters(date(2020, 3, 29)) == 92
    assert quarters(date(2020, 10, 25)) == 100
    assert quarters(date(2020, 1, 15)) == 96


def test_iso_round_trip() -> None:
    ts = datetime(2020, 1, 1, 22, 0, tzinfo=UTC)
    assert iso_z(ts) == "2020-01-01T22:00:00Z"
    assert parse_iso(iso_z(ts)) == ts
    assert iso_z(ts.replace(microsecond=5000)) == "2020-01-01T22:00:00.005Z"


def test_to_ms_is_exact_for_microsecond_timestamps() -> None:
    # 2020-01-01T00:00:00.000999Z is 999 microseconds: still millisecond 0 of that second, never rounded up or down
    base = datetime(2020, 1, 1, tzinfo=UTC)
    assert to_ms(base) == 1_577_836_800_000
    for micros in (1, 999, 1000, 123_456, 999_999):
        assert to_ms(base + timedelta(microseconds=micros)) == 1_577_836_800_000 + micros // 1000
    # float arithmetic (timestamp() * 1000) gives ...080 here; 2039-03-21T12:23:21Z is 2_184_323_001 s (calendar.timegm)
    assert to_ms(parse_iso("2039-03-21T12:23:21.081Z")) == 2_184_323_001_081


def test_text_and_epoch_milliseconds_convert_exactly_both_ways() -> None:
    from iotcommon.days import from_ms, ms_to_ts, ts_to_ms

    # 2004-03-15T07:55:47Z is 1_079_337_347 s (calendar.timegm); float math (timestamp() * 1000) gives ...471
    assert ts_to_ms("2004-03-15T07:55:47.472Z") == 1_079_337_347_472
    assert ms_to_ts(1_079_337_347_472) == "2004-03-15T07:55:47.472Z"
    assert ts_to_ms("2004-03-15T09:55:47.472+02:00") == 1_079_337_347_472
    assert ms_to_ts(0) == "1970-01-01T00:00:00Z"
    assert from_ms(-1) == datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC)
    import pytest

    with pytest.raises(ValueError, match="no time zone"):
        ts_to_ms("2004-03-15T07:55:47")
