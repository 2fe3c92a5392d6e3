"""Raw readings kept undecoded until a client asks (ws_bridge.lazy; issue 15): pure logic, with a fake Kafka message
in place of confluent-kafka's (no Kafka here; test_bridge_live_kafka.py runs the tail against a real broker).

Expected values are computed here from the readings themselves (identity site/sensor/ts/seq, event time as epoch
milliseconds by datetime arithmetic, out-of-order flags from the order of the event times), not by the code under test.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from iotcommon.errors import MessageError
from iotcommon.topics import Topics
from ws_bridge.dedup import RecentIdents
from ws_bridge.hub import Hub, Session
from ws_bridge.lazy import PendingRaw, pending, pre_read, resolved
from ws_bridge.protocol import Filter, Subscribe
from ws_bridge.records import OrderTracker, Record, decode
from ws_bridge.tail import KafkaTail

TOPICS = Topics("lazytest")


def epoch_ms(ts: str) -> int:
    moment = datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    return int((moment - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()) * 1000


class FakeMessage:
    """The part of confluent_kafka.Message the tail reads."""

    def __init__(self, value: bytes, offset: int, topic: str = TOPICS.raw) -> None:
        self._value, self._offset, self._topic = value, offset, topic

    def error(self) -> None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return 1, 1_700_000_000_000 + self._offset

    def value(self) -> bytes:
        return self._value


def uncommitted_tail() -> KafkaTail:
    """The uncommitted live path's tail of raw readings (never started: ``_decode`` is fed fake messages)."""
    return KafkaTail("127.0.0.1:9", TOPICS, streams=("raw",), uncommitted=True, dedup=RecentIdents(1000))


def history_first(hub: Hub, site: str, sub_id: str = "h") -> list[Record]:
    entry = hub.subscribe(Session(100), Subscribe(sub_id, "raw", Filter(sites=frozenset({site})), since_ms=0))
    return hub.go_live(entry)


def test_pre_read_finds_what_the_decoder_finds(msg: SimpleNamespace) -> None:
    value = msg.reading("HVAC1", "2021-03-04T05:06:07Z", 41.5, site="north-3", seq=9001)
    assert pre_read(value) == ("north-3", "HVAC1", epoch_ms("2021-03-04T05:06:07Z"),
                               "north-3/HVAC1/2021-03-04T05:06:07Z/9001")
    assert epoch_ms("2021-03-04T05:06:07Z") == 1614834367000


@pytest.mark.parametrize("layout", [
    '{"v": 1, "site": "site1", "sensor": "TH1", "ts": "2020-01-01T00:15:00Z", "value": 1, "unit": "C", "seq": 1}',
    '{"site":"site1","v":1,"sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1}',
    '{"v":1,"site":"site\\u0031","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1}',
    '{"v":1,"site":"site1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1,"seq":2}',
    '{"v":1,"site":"site1","sensor":"TH1","ts":"2020-01-01T00:15:00+00:00","value":1,"unit":"C","seq":1}',
    '{"v":1,"site":"site 1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1}',
    '{"v":1,"site":"site1","sensor":"NOPE","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1}',
    '{"v":1,"site":"site1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":01}',
    '{"v":2,"site":"site1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1,"unit":"C","seq":1}',
    "not json",
])
def test_any_other_layout_is_decoded_at_once(layout: str) -> None:
    """Whitespace, another key order, escapes, duplicate keys, a ts or site or sensor the decoder refuses: not
    read by the regex, so the tail decodes (and checks) them at arrival as before."""
    assert pre_read(layout.encode()) is None
    tail = uncommitted_tail()
    batch = tail._decode([FakeMessage(layout.encode(), 0)])[0]  # type: ignore[list-item]
    assert not any(isinstance(r, PendingRaw) for r in batch)


def test_unwatched_readings_are_not_decoded_until_a_client_asks(msg: SimpleNamespace) -> None:
    tail, hub = uncommitted_tail(), Hub()
    watched = hub.subscribe(Session(100), Subscribe("w", "raw", Filter(sites=frozenset({"site1"}))))
    values = [msg.reading(site=site, seq=seq) for seq, site in enumerate(["site1", "site2", "site1", "site2"])]
    batch = tail._decode([FakeMessage(v, i) for i, v in enumerate(values)])[0]  # type: ignore[misc]
    assert all(isinstance(r, PendingRaw) for r in batch)
    hub.publish(batch)
    decoded = [r.decoded for r in batch if isinstance(r, PendingRaw)]
    assert decoded == [True, False, True, False]  # site1 went to the live client; site2 reached nobody
    assert watched.session.sent_records == 0 and watched.session.pending_records == 2
    buffered = history_first(hub, "site2")
    assert [json.loads(r.item)["data"]["seq"] for r in buffered] == [1, 3]
    assert all(r.decoded for r in batch if isinstance(r, PendingRaw))


def test_a_lazily_decoded_buffer_equals_the_eager_decode(msg: SimpleNamespace) -> None:
    """Same items (kafka_ts, out_of_order, data), identities and event times as decoding every record at arrival."""
    stamps = ["2020-01-01T00:30:00Z", "2020-01-01T00:15:00Z", "2020-01-01T00:45:00Z", "2020-01-01T00:40:00Z"]
    values = [msg.reading("TH1", ts, 20.0 + i, site="site7", seq=i) for i, ts in enumerate(stamps)]
    tail, hub = uncommitted_tail(), Hub()
    hub.publish(tail._decode([FakeMessage(v, i) for i, v in enumerate(values)])[0])  # type: ignore[misc]
    lazy = history_first(hub, "site7")
    tracker = OrderTracker()
    eager = [decode("raw", v, kafka_ts=1_700_000_000_000 + i, tracker=tracker) for i, v in enumerate(values)]
    assert lazy == eager
    # and by hand: the 2nd reading (00:15 after 00:30) and the 4th (00:40 after 00:45) are out of order
    items = [json.loads(r.item) for r in lazy]
    assert [i["out_of_order"] for i in items] == [False, True, False, True]
    assert [i["kafka_ts"] for i in items] == [1_700_000_000_000 + i for i in range(4)]
    assert [r.event_ms for r in lazy] == [epoch_ms(ts) for ts in stamps]
    assert [r.ident for r in lazy] == [f"site7/TH1/{ts}/{i}" for i, ts in enumerate(stamps)]


def test_a_replay_of_an_unwatched_reading_is_shown_once_from_the_buffer(msg: SimpleNamespace) -> None:
    """An aborted transaction's reading of an unwatched site, kept undecoded, then sent again by the restored job
    (byte for byte, and once more in another JSON layout with the same identity): a history-first client of that
    site gets it once."""
    tail, hub = uncommitted_tail(), Hub()
    first = msg.reading("TH1", "2020-01-01T00:15:00Z", 20.5, site="site4", seq=11)
    other = msg.reading("TH1", "2020-01-01T00:30:00Z", 21.0, site="site4", seq=12)
    hub.publish(tail._decode([FakeMessage(first, 0), FakeMessage(other, 1)])[0])  # type: ignore[list-item]
    entry = hub.subscribe(Session(100), Subscribe("h", "raw", Filter(sites=frozenset({"site4"})), since_ms=0))
    reordered = json.dumps(json.loads(first), indent=1).encode()  # same reading, another layout: decoded at once
    replay = tail._decode([FakeMessage(first, 2), FakeMessage(reordered, 3),  # type: ignore[list-item]
                           FakeMessage(other, 4)])[0]
    assert replay == []
    hub.publish(replay)
    buffered = hub.go_live(entry)
    assert [r.ident for r in buffered] == ["site4/TH1/2020-01-01T00:15:00Z/11", "site4/TH1/2020-01-01T00:30:00Z/12"]


def test_a_bad_reading_in_the_canonical_layout_is_reported_when_asked_for_once() -> None:
    value = (b'{"v":1,"site":"site1","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":1e999,"unit":"C",'
             b'"seq":1}')  # 1e999 is not finite as a double: records.decode refuses it
    with pytest.raises(MessageError):
        decode("raw", value)
    bad: list[tuple[str, str]] = []
    hub = Hub(on_bad=lambda stream, exc: bad.append((stream, exc.reason)))
    item = pending(value, None, OrderTracker())
    assert item is not None
    hub.publish([item])
    assert bad == [] and not item.decoded
    assert history_first(hub, "site1", "a") == [] and history_first(hub, "site1", "b") == []
    assert bad == [("raw", "non-finite")]  # once, however often it is asked for
    assert resolved([item]) == []


def test_records_before_the_catch_up_end_are_kept_apart_from_new_ones(msg: SimpleNamespace) -> None:
    """The tail's catch-up (a bridge started behind the sync workers: test_bridge_catch_up.py): the records before
    the end it saw at start go to ``remember``, the rest to ``deliver``; then it stops checking."""
    tail = uncommitted_tail()
    tail._catching_up = {(TOPICS.raw, 0): 12}
    values = [msg.reading(seq=seq) for seq in range(10, 14)]
    new, older = tail._decode([FakeMessage(v, seq) for seq, v in zip(range(10, 14), values, strict=True)])  # type: ignore[misc]
    assert [r.ident.rsplit("/", 1)[1] for r in older] == ["10", "11"]
    assert [r.ident.rsplit("/", 1)[1] for r in new] == ["12", "13"]
    assert tail._catching_up == {}
