"""records.decode: each stream's messages are checked by the decoder of their type in iotcommon (one owner of the
message contract); what fails is a MessageError, which the tail and the history count and log (never a crash)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from iotcommon.errors import MessageError
from ws_bridge.records import decode


def ms(*fields: int) -> int:
    return int(datetime(*fields, tzinfo=UTC).timestamp()) * 1000  # type: ignore[misc]


def edited(value: bytes, **changes: object) -> bytes:
    return json.dumps({**json.loads(value), **changes}).encode()


def test_valid_messages_give_site_sensor_event_time_and_identity(msg: SimpleNamespace) -> None:
    raw = decode("raw", msg.reading("TH1", ts="2020-01-01T00:15:00Z", site="s1", seq=3))
    assert (raw.site, raw.sensor, raw.event_ms, raw.ident) == ("s1", "TH1", ms(2020, 1, 1, 0, 15),
                                                               "s1/TH1/2020-01-01T00:15:00Z/3")
    agg = decode("aggregates", msg.aggregate("AggDayDiff[Etot]", day="2020-01-02", revision=2, site="s1"))
    assert (agg.site, agg.sensor, agg.event_ms, agg.ident) == ("s1", "Etot", ms(2020, 1, 2, 23, 59, 59),
                                                               "s1/AggDayDiff[Etot]/2020-01-02#2")
    late = decode("late", msg.late("W1", ts="2020-01-01T00:15:00Z", site="s1"))
    assert (late.site, late.sensor, late.ident) == ("s1", "W1", "s1/W1/2020-01-01T00:15:00Z/7")
    dead = decode("deadletters", msg.dead(b'{"site": "s9", "sensor": "TH1"}', at="2020-01-02T00:00:00Z"))
    assert (dead.site, dead.sensor, dead.event_ms, dead.ident) == ("s9", "TH1", ms(2020, 1, 2),
                                                                   "iotpipe.readings/0/42")


@pytest.mark.parametrize(
    ("stream", "bad"),
    [
        ("aggregates", lambda m: edited(m.aggregate("AggDay[TH1]"), name="AggDay[TH2]")),  # name != kind + sensor
        ("aggregates", lambda m: edited(m.aggregate(), day="2020-02-30")),  # not a calendar day
        ("aggregates", lambda m: edited(m.aggregate(), count="96")),
        ("late", lambda m: edited(m.late(), day="yesterday")),
        ("late", lambda m: edited(m.late(), reading={"site": "s1"})),
        ("deadletters", lambda m: edited(m.dead(), reason="whatever")),
        ("raw", lambda m: edited(m.reading(), sensor="TH9")),
        ("raw", lambda m: edited(m.reading(), site="site\n")),
    ],
)
def test_what_the_message_contract_refuses_is_a_message_error(msg: SimpleNamespace, stream: str, bad: object) -> None:
    with pytest.raises(MessageError):
        decode(stream, bad(msg))  # type: ignore[operator]
