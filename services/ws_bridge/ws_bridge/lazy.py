"""Pure: raw readings kept as their Kafka bytes until a client asks for them (issue 15, the bridge's CPU per reading).

The bridge's clients watch a few sites of many, so most raw readings reach no client; decoding and checking each one
(``records.decode``, ~10 us) was most of the bridge's CPU. What every raw reading needs at once is small: its
identity (the de-duplication of the uncommitted live path), its device and event time (the out-of-order flag, the
newest event time, the filters). ``pre_read`` takes them from a reading in the canonical layout of
``iotcommon.messages.Reading.encode`` (compact JSON, the seven keys in their order, site, sensor and ts without escapes)
with one anchored regex. It reads exactly what the JSON decoder would: the layout leaves no room for duplicate,
escaped or nested keys. Any other layout returns None, and the reading takes the full decode at once, as before.

A ``PendingRaw`` keeps the bytes and what ``pre_read`` found; ``resolve`` decodes and checks it the first time a live
subscription or a history-first buffer selects it (``records.decode``, with the out-of-order flag fixed at arrival)
and remembers the result. A pending reading that fails the check then is reported then (``on_bad``), once, and never
shown; its identity and event time had entered the de-duplication window and the order tracker at arrival (the
stream job writes only checked readings to ``.raw``, so this is about corrupt records only).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable

from iotcommon.days import ts_to_ms
from iotcommon.errors import MessageError
from iotcommon.limits import OUTER_LIMITS
from iotcommon.messages import SITE_PATTERN, TS_PATTERN, VERSION
from iotcommon.sensors import SENSORS
from ws_bridge.records import MAX_MS, OrderTracker, Record, decode

_STR = r'"([^"\\\x00-\x1f]*)"'  # a JSON string without escapes (control characters are not JSON either)
_NUMBER = r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?"
_CANONICAL = re.compile(
    r'\{"v":' + str(VERSION) + r',"site":' + _STR + r',"sensor":' + _STR + r',"ts":' + _STR
    + r',"value":' + _NUMBER + r',"unit":"(?:[^"\\\x00-\x1f]|\\.)*","seq":(0|[1-9][0-9]*)\}', re.ASCII)

OnBad = Callable[[str, MessageError], None]


Fields = tuple[str, str, int, str]  # site, sensor, event time (ms), identity site/sensor/ts/seq as records.decode
# builds them (a plain tuple: a NamedTuple's constructor cost 4 % of the bridge's CPU at 10,000 readings/s)


@functools.lru_cache(maxsize=4096)  # the readings of one step share their ts
def _event_ms(ts: str) -> int | None:
    """The event time ``records.decode`` would find, if its checks of ts would pass."""
    if not TS_PATTERN.fullmatch(ts):
        return None
    try:
        ms = ts_to_ms(ts)
    except (ValueError, OverflowError):
        return None
    return ms if 0 <= ms <= MAX_MS and OUTER_LIMITS.ts_problem(ts, ms) is None else None


@functools.lru_cache(maxsize=4096)
def _device_ok(site: str, sensor: str) -> bool:
    return SITE_PATTERN.fullmatch(site) is not None and sensor in SENSORS


def pre_read(value: bytes | None) -> Fields | None:
    """What the bridge needs of every raw reading, from the canonical layout. None for any other layout, or for a
    site, sensor or ts that ``records.decode`` would refuse (``resolve`` checks the rest: value, unit, seq range)."""
    if value is None:
        return None
    try:
        match = _CANONICAL.fullmatch(value.decode())
    except UnicodeDecodeError:
        return None
    if match is None:
        return None
    site, sensor, ts, seq = match.groups()
    event_ms = _event_ms(ts)
    if event_ms is None or not _device_ok(site, sensor):
        return None
    return site, sensor, event_ms, f"{site}/{sensor}/{ts}/{seq}"


class PendingRaw:
    """A raw reading not decoded yet: the fields the hub routes on, its bytes, and what arrival decided."""

    __slots__ = ("_failed", "_record", "event_ms", "ident", "kafka_ts", "out_of_order", "sensor", "site", "value")
    stream = "raw"

    def __init__(self, fields: Fields, value: bytes, kafka_ts: int | None, out_of_order: bool) -> None:
        site, sensor, self.event_ms, self.ident = fields
        self.site: str | None = site
        self.sensor: str | None = sensor
        self.value = value
        self.kafka_ts = kafka_ts
        self.out_of_order = out_of_order
        self._record: Record | None = None
        self._failed = False

    @property
    def decoded(self) -> bool:
        """Whether ``resolve`` has run (tests, metrics)."""
        return self._record is not None or self._failed

    def resolve(self, on_bad: OnBad | None = None) -> Record | None:
        """The decoded and checked Record (decoded once); None when the check fails (reported once)."""
        if self._record is None and not self._failed:
            try:
                self._record = decode("raw", self.value, kafka_ts=self.kafka_ts, out_of_order=self.out_of_order)
            except MessageError as exc:
                self._failed = True
                if on_bad is not None:
                    on_bad("raw", exc)
        return self._record


Live = Record | PendingRaw


def pending(value: bytes | None, kafka_ts: int | None, tracker: OrderTracker) -> PendingRaw | None:
    """A raw reading's PendingRaw (the tracker sees it now, in arrival order); None: decode it at once instead."""
    fields = pre_read(value)
    if fields is None or value is None:
        return None
    out_of_order = tracker.is_out_of_order("raw", f"{fields[0]}/{fields[1]}", fields[2])
    return PendingRaw(fields, value, kafka_ts, out_of_order)


def resolved(items: list[Live], on_bad: OnBad | None = None) -> list[Record]:
    """The Records of ``items`` in order, pending ones decoded (those that fail the check left out)."""
    out: list[Record] = []
    for item in items:
        if isinstance(item, PendingRaw):
            record = item.resolve(on_bad)
            if record is not None:
                out.append(record)
        else:
            out.append(item)
    return out
