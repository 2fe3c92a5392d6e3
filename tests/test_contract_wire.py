"""The wire contracts that used to have several owners now have one (iotcommon), and the bugs of the copies are gone:
a site id with a trailing newline, float time conversion 1 ms off, aggregates checked by field names only, the late
message built as a raw dict, error classes outside IoTError. Pure: no services."""

from __future__ import annotations

import calendar
import json
from typing import Any

import pytest

from hbase_sync.mapping import Mapper, map_aggregate
from iotcommon.days import ms_to_ts
from iotcommon.errors import IoTError, MessageError
from iotcommon.messages import Aggregate, Reading
from iotcommon.topics import Topics
from iotcommon.wire import late_from_dict
from iotcommon.zones import SiteZones
from stream_job.core import DayAggregator, DictStore
from ws_bridge import protocol, queries, records
from ws_bridge.history import Query

# A millisecond instant whose float conversion (datetime.timestamp() * 1000, then int) lands 1 ms early.
TRICKY_TS = "2004-03-15T07:55:47.472Z"
TRICKY_MS = calendar.timegm((2004, 3, 15, 7, 55, 47)) * 1000 + 472


class Params:
    """Query parameters as Starlette gives them (``getlist``)."""

    def __init__(self, **values: str) -> None:
        self.values = values

    def getlist(self, key: str) -> list[str]:
        return [self.values[key]] if key in self.values else []


def subscribe(**fields: Any) -> str:
    return json.dumps({"type": "subscribe", "id": "a", "stream": "raw", **fields})


def test_a_site_with_a_trailing_newline_is_refused_everywhere() -> None:
    with pytest.raises(protocol.ProtocolError, match="bad site"):
        protocol.parse(subscribe(sites=["site1\n"], last=5))
    with pytest.raises(queries.QueryError, match="bad site"):
        queries.parse_query("raw", Params(site="site1\nsite2"), queries.Bounds())
    query, _ = queries.parse_query("raw", Params(site=" site1\n"), queries.Bounds())  # list items are stripped
    assert query.sites == ("site1",)
    aggregate = Aggregate("site1\n", "AggDay[TH1]", "AggDay", "TH1", "2020-01-01", 15.0, "C", 96, 1,
                          "2019-12-31T22:00:00Z", "2020-01-01T22:00:00Z", "2026-01-01T00:00:00Z")
    with pytest.raises(MessageError, match="site"):
        map_aggregate(aggregate.encode())
    assert protocol.parse(subscribe(sites=["site1"], last=5)).filter.sites == {"site1"}  # type: ignore[union-attr]


def test_millisecond_timestamps_convert_exactly_in_the_bridge() -> None:
    reading = Reading("site1", "TH1", TRICKY_TS, 20.0, "C", 1)
    assert records.decode("raw", reading.encode()).event_ms == TRICKY_MS
    query, _ = queries.parse_query("raw", Params(site="site1", **{"from": TRICKY_TS}), queries.Bounds())
    assert query.from_ms == TRICKY_MS
    sub = protocol.parse(subscribe(sites=["site1"], since=TRICKY_TS))
    assert isinstance(sub, protocol.Subscribe)
    assert sub.since_ms == TRICKY_MS
    assert isinstance(query, Query)
    assert ms_to_ts(TRICKY_MS) == TRICKY_TS


def test_the_sync_worker_dead_letters_an_aggregate_that_only_has_the_right_field_names() -> None:
    topics = Topics("iotpipe")
    good = Aggregate("site1", "AggDay[TH1]", "AggDay", "TH1", "2020-01-01", 15.0, "C", 96, 1,
                     "2019-12-31T22:00:00Z", "2020-01-01T22:00:00Z", "2026-01-01T00:00:00Z")
    bad = {**good.to_dict(), "revision": 0, "day": "2020-02-30", "sensor": "XX9"}

    class Record:
        def __init__(self, value: bytes) -> None:
            self._value = value

        def topic(self) -> str:
            return topics.aggregates

        def partition(self) -> int:
            return 0

        def offset(self) -> int:
            return 5

        def key(self) -> bytes:
            return b"site1/AggDay[TH1]/2020-01-01"

        def value(self) -> bytes:
            return self._value

        def timestamp(self) -> tuple[int, int]:
            return 1, TRICKY_MS

    mapper = Mapper(topics)
    assert mapper.map(Record(good.encode())).table == "aggregates"
    row = mapper.map(Record(json.dumps(bad).encode()))
    assert (row.table, row.rejected) == ("deadletters", "schema")
    assert json.loads(row.cells[b"d:m"])["at"] == TRICKY_TS


def test_the_stream_jobs_late_message_is_a_valid_late_reading() -> None:
    core = DayAggregator(SiteZones("UTC"), lateness_ms=0)
    ts = "2020-01-01T12:00:00Z"
    clock = calendar.timegm((2020, 1, 3, 0, 0, 0)) * 1000  # the site's clock is a day past the reading's day
    out, _ = core.on_reading(DictStore(), "site1", "W1", ts, calendar.timegm((2020, 1, 1, 12, 0, 0)) * 1000, 0.5, 9,
                             clock, 1, clock)
    late = [o for o in out if o.topic == "late"]
    assert len(late) == 1
    assert late[0].key == "site1/W1"
    message = late_from_dict(json.loads(late[0].value))
    assert message.reading == Reading("site1", "W1", ts, 0.5, "l", 9)
    assert (message.day, message.late_by_ms) == ("2020-01-01", clock - calendar.timegm((2020, 1, 2, 0, 0, 0)) * 1000)


def test_the_bridges_errors_are_iot_errors() -> None:
    assert issubclass(protocol.ProtocolError, IoTError)
    assert issubclass(queries.QueryError, IoTError)
    assert issubclass(queries.BoundExceeded, IoTError)
