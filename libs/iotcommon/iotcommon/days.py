"""Which local day a reading belongs to. Applied identically by the simulators, the stream job and the tests.

A reading stamped t describes the interval that ends at t (a 15-minute energy reading at 00:15 is the consumption of
00:00-00:15; the cumulative Etot at 00:00 is the meter at the end of the previous day). So a day D of a site is the
half-open interval (D 00:00, D+1 00:00] in the site's time zone: a reading at exactly 00:00 local time closes the
previous day. Days follow the zone's rules, so they last 23 h or 25 h on DST transitions (92 or 100 quarter readings).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_TZ = "Europe/Athens"
_EPSILON = timedelta(microseconds=1)


def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def day_of(ts: datetime, tz: ZoneInfo) -> date:
    """The local day a reading stamped ``ts`` (aware) belongs to."""
    return (ts - _EPSILON).astimezone(tz).date()


def day_of_ms(ts_ms: int, tz: ZoneInfo) -> date:
    """``day_of`` for an epoch-millisecond timestamp (ms precision: subtract 1 ms)."""
    return from_ms(ts_ms - 1).astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The exclusive start of ``day``: local midnight at its beginning, as an aware UTC datetime."""
    return datetime.combine(day, time(0), tz).astimezone(UTC)


def day_end(day: date, tz: ZoneInfo) -> datetime:
    """The inclusive end of ``day``: the next local midnight, as an aware UTC datetime."""
    return day_start(day + timedelta(days=1), tz)


def day_length(day: date, tz: ZoneInfo) -> timedelta:
    """23 h, 24 h or 25 h."""
    return day_end(day, tz) - day_start(day, tz)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def to_ms(ts: datetime) -> int:
    """Epoch milliseconds of an aware datetime, floored, in exact integer arithmetic (float math can be 1 ms off)."""
    return (ts - _EPOCH) // _MS


def from_ms(ts_ms: int) -> datetime:
    """Aware UTC datetime of epoch milliseconds, exact."""
    return _EPOCH + ts_ms * _MS


def ts_to_ms(ts: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp with a zone, sub-millisecond digits floored, exact.

    Raises ValueError when it is not a valid instant or has no zone.
    """
    parsed = datetime.fromisoformat(ts)
    if parsed.tzinfo is None:
        msg = f"timestamp {ts!r} has no time zone"
        raise ValueError(msg)
    return (parsed - _EPOCH) // _MS


def ms_to_ts(ts_ms: int) -> str:
    """``iso_z`` of epoch milliseconds: the wire form of an event time."""
    return iso_z(from_ms(ts_ms))


def iso_z(ts: datetime) -> str:
    """RFC 3339 UTC with a Z, seconds precision unless there are milliseconds: the wire format of every timestamp."""
    ts = ts.astimezone(UTC)
    if ts.microsecond:
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """Parse an RFC 3339 timestamp that carries a zone (Z or an offset). Naive timestamps are refused."""
    ts = datetime.fromisoformat(text)
    if ts.tzinfo is None:
        msg = f"timestamp {text!r} has no time zone"
        raise ValueError(msg)
    return ts.astimezone(UTC)
