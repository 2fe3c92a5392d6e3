"""HBase layout shared by the sync worker (writes) and the bridge (reads). Pure: no HBase client here.

Tables (one set per pipeline, named ``<prefix>_<table>``): ``raw``, ``aggregates``, ``late``, ``deadletters``; one
column family ``d``; the full message JSON is in ``d:m``.

Row keys serve the dashboards' query, "one series of one site over a time range, in time order", and spread writes:

    <salt>|<site>|<series>|<order part>

``salt`` is two hex digits, crc32(site/series) mod 16: every device writes into its own contiguous key range (one
scan per series) while the 16 buckets spread the devices of many sites over regions. The order part is fixed-width so
that byte order is time order: ``<ts_ms:013d>|<seq:010d>`` for readings, ``<YYYY-MM-DD>`` for aggregates. Keys are
deterministic, so writing the same message twice leaves the same row (replays are harmless). The aggregates row holds
the highest revision (the sync worker's compare-and-set). docs/storage.md explains the design.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Mapping
from typing import Any

FAMILY = "d"
MESSAGE_COLUMN = b"d:m"
SALT_BUCKETS = 16
TABLES = ("raw", "aggregates", "late", "deadletters")
SEP = "|"


NO_TTL = 0x7FFFFFFF  # HConstants.FOREVER: the TTL HBase reports for a family that keeps its cells forever


def families(ttl_s: int = 0, max_versions: int = 1, compression: str = "NONE") -> dict[str, dict[str, object]]:
    """happybase ``create_table`` families of one table: family ``d`` for every creator (sync worker, operator).

    One version by default, since a row is only ever rewritten with the same content or a newer aggregate revision.
    A row bloom filter. Block cache ON: Thrift1's ColumnDescriptor turns it off unless asked, which would make every
    dashboard read go to disk. ``time_to_live`` only when ``ttl_s`` > 0 (HBase's default is forever), ``compression``
    only when it is not NONE.
    """
    options: dict[str, object] = {"max_versions": max_versions, "bloom_filter_type": "ROW", "block_cache_enabled": True}
    if ttl_s > 0:
        options["time_to_live"] = ttl_s
    if compression != "NONE":
        options["compression"] = compression
    return {FAMILY: options}


def ttl_seconds(descriptor: Mapping[str, Any]) -> int:
    """TTL in seconds of a family descriptor as Thrift returns it (happybase ``Table.families()``); 0 = forever."""
    ttl = int(descriptor.get("time_to_live", NO_TTL))
    return 0 if ttl <= 0 or ttl >= NO_TTL else ttl


def table_name(prefix: str, table: str) -> str:
    """Full table name of one pipeline's table (happybase: Connection(table_prefix=prefix) adds the same)."""
    if table not in TABLES:
        msg = f"unknown table {table!r}; tables are {', '.join(TABLES)}"
        raise ValueError(msg)
    return f"{prefix}_{table}"


def salt(site: str, series: str) -> str:
    return f"{zlib.crc32(f'{site}/{series}'.encode()) % SALT_BUCKETS:02x}"


@functools.lru_cache(maxsize=65_536)
def series_prefix(site: str, series: str) -> bytes:
    """Prefix of every row of one series (a sensor, or an aggregate name such as AggDay[TH1])."""
    return SEP.join((salt(site, series), site, series, "")).encode()


def _fixed(value: int, width: int, what: str) -> str:
    """Zero-padded decimal of exactly ``width`` digits; out of range would break byte order, so it is refused."""
    if isinstance(value, bool) or not 0 <= value < 10**width:
        msg = f"{what} {value!r} is outside 0..{10**width - 1} (row keys need {width} digits)"
        raise ValueError(msg)
    return f"{value:0{width}d}"


_TS_DIGITS, _SEQ_DIGITS = 10**13, 10**10


def reading_key(site: str, sensor: str, ts_ms: int, seq: int) -> bytes:
    """Row of one reading (raw and late tables). Raises ValueError if ts_ms or seq cannot be encoded in order."""
    if type(ts_ms) is int and type(seq) is int and 0 <= ts_ms < _TS_DIGITS and 0 <= seq < _SEQ_DIGITS:
        return series_prefix(site, sensor) + b"%013d|%010d" % (ts_ms, seq)  # the sync worker's hot path
    return series_prefix(site, sensor) + f"{_fixed(ts_ms, 13, 'ts_ms')}{SEP}{_fixed(seq, 10, 'seq')}".encode()


def reading_range(site: str, sensor: str, from_ms: int, to_ms: int) -> tuple[bytes, bytes]:
    """(row_start, row_stop) for readings with from_ms <= ts <= to_ms (row_stop is exclusive)."""
    prefix = series_prefix(site, sensor)
    return prefix + f"{from_ms:013d}".encode(), prefix + f"{to_ms + 1:013d}".encode()


def aggregate_key(site: str, name: str, day: str) -> bytes:
    return series_prefix(site, name) + day.encode()


def aggregate_range(site: str, name: str, from_day: str, to_day: str) -> tuple[bytes, bytes]:
    """(row_start, row_stop) for aggregates with from_day <= day <= to_day (ISO dates sort as strings)."""
    prefix = series_prefix(site, name)
    return prefix + from_day.encode(), prefix + to_day.encode() + b"\xff"


def deadletter_key(topic: str, partition: int, offset: int) -> bytes:
    """Row of a dead letter: where the rejected record was (topic, partition, offset), so a replay rewrites it."""
    return series_prefix(topic, str(partition)) + _fixed(offset, 19, "offset").encode()
