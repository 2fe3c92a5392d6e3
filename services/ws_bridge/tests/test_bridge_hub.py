"""Pure fan-out logic: per-client bounded queues, the overflow policy, filters, history buffering (no I/O)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

from ws_bridge.hub import Close, Hub, Session
from ws_bridge.protocol import Filter, Subscribe
from ws_bridge.records import OrderTracker, decode


async def drain(session: Session) -> list[dict]:
    frames = []
    while session.pending_records or session._frames or session._dropped:
        item = await session.next_frame()
        assert not isinstance(item, Close)
        frames.append(json.loads(item[0]))
    return frames


async def test_overflow_drops_the_oldest_data_and_tells_the_client_first() -> None:
    session = Session(limit=5)
    session.offer('{"type":"subscribed"}')  # a control frame: never dropped
    for i in range(4):
        session.offer(json.dumps({"type": "data", "n": i}), records=2)
    # 8 records offered, 5 allowed: the two oldest data frames (4 records) went
    assert session.dropped_total == 4 and session.pending_records == 4
    frames = await drain(session)
    assert frames[0] == {"type": "overflow", "dropped": 4, "dropped_total": 4}
    assert frames[1:] == [{"type": "subscribed"}, {"type": "data", "n": 2}, {"type": "data", "n": 3}]


async def test_close_comes_after_everything_queued() -> None:
    session = Session(limit=10)
    session.offer('{"type":"error"}')
    session.close_after_queued(1003, "unsupported data")
    first = await session.next_frame()
    assert first == ('{"type":"error"}', 0)
    assert await session.next_frame() == Close(1003, "unsupported data")


async def test_next_frame_waits_for_an_offer() -> None:
    session = Session(limit=10)
    waiter = asyncio.create_task(session.next_frame())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    session.offer("x", records=1)
    assert await asyncio.wait_for(waiter, 5) == ("x", 1)


def test_publish_matches_each_filter_and_encodes_shared_frames_once(msg: SimpleNamespace) -> None:
    hub = Hub()
    sessions = [Session(100) for _ in range(3)]
    hub.subscribe(sessions[0], Subscribe("a", "raw", Filter(frozenset({"site1"}), frozenset({"TH1"}))))
    hub.subscribe(sessions[1], Subscribe("a", "raw", Filter(frozenset({"site1"}), frozenset({"TH1"}))))
    hub.subscribe(sessions[2], Subscribe("b", "raw", Filter(None, frozenset({"TH2"}))))
    batch = [decode("raw", msg.reading("TH1")), decode("raw", msg.reading("TH2", site="x")),
             decode("raw", msg.reading("TH1", site="x"))]
    hub.publish(batch)
    f0, f1, f2 = (s._frames[0][0] for s in sessions)
    assert f0 is f1  # same filter and id: one frame object shared
    assert [r["data"]["site"] for r in json.loads(f0)["records"]] == ["site1"]
    assert [r["data"]["sensor"] for r in json.loads(f2)["records"]] == ["TH2"]
    assert hub.latest_ms["raw"] == batch[0].event_ms


def test_history_first_subscriptions_buffer_live_records_until_go_live(msg: SimpleNamespace) -> None:
    hub = Hub()
    session = Session(100)
    entry = hub.subscribe(session, Subscribe("h", "raw", Filter(frozenset({"site1"}), None), last=10))
    hub.publish([decode("raw", msg.reading("TH1", seq=5))])
    assert not session._frames
    buffered = hub.go_live(entry)
    assert [r.data["seq"] for r in buffered] == [5]
    hub.publish([decode("raw", msg.reading("TH1", seq=6))])
    assert len(session._frames) == 1


def test_unsubscribed_sessions_get_nothing(msg: SimpleNamespace) -> None:
    hub = Hub()
    session = Session(100)
    hub.subscribe(session, Subscribe("a", "raw", Filter()))
    hub.drop_session(session)
    hub.publish([decode("raw", msg.reading())])
    assert hub.subscription_count == 0 and not session._frames


def test_out_of_order_marking_per_device(msg: SimpleNamespace) -> None:
    tracker = OrderTracker()
    marks = [json.loads(decode("raw", v, tracker=tracker).item)["out_of_order"] for v in (
        msg.reading("W1", "2020-01-03T00:00:00Z"), msg.reading("W1", "2020-01-01T00:00:00Z"),
        msg.reading("TH1", "2020-01-01T00:00:00Z"), msg.reading("W1", "2020-01-03T00:15:00Z"))]
    assert marks == [False, True, False, False]


async def test_a_client_behind_gets_queued_frames_of_one_subscription_merged() -> None:
    session = Session(limit=100)
    session.offer('{"type":"data","id":"a","stream":"raw","phase":"live","records":[1,2]}', records=2)
    session.offer('{"type":"data","id":"a","stream":"raw","phase":"live","records":[3]}', records=1)
    session.offer('{"type":"data","id":"b","stream":"raw","phase":"live","records":[9]}', records=1)
    session.offer('{"type":"data","id":"a","stream":"raw","phase":"live","records":[4]}', records=1)
    frames = [await session.next_frame() for _ in range(3)]
    assert [(json.loads(f)["id"], json.loads(f)["records"], n) for f, n in frames] == [  # type: ignore[misc]
        ("a", [1, 2, 3], 3), ("b", [9], 1), ("a", [4], 1)]
    assert session.pending_records == 0 and session.sent_records == 5


def test_history_first_subscriptions_start_with_matching_recent_live_records(msg: SimpleNamespace) -> None:
    """A record pushed live just before the subscription may not be in HBase yet: it is not lost."""
    hub = Hub(recent=3)
    hub.publish([decode("raw", msg.reading("TH1", "2020-01-01T00:15:00Z", seq=1)),
                 decode("raw", msg.reading("TH2", "2020-01-01T00:15:00Z", seq=1)),
                 decode("raw", msg.reading("TH1", "2020-01-01T00:30:00Z", seq=2)),
                 decode("raw", msg.reading("TH1", "2020-01-01T00:45:00Z", seq=3))])  # the first falls out (recent=3)
    session = Session(100)
    since = decode("raw", msg.reading("TH1", "2020-01-01T00:30:00Z")).event_ms
    entry = hub.subscribe(session, Subscribe("h", "raw", Filter(None, frozenset({"TH1"})), since_ms=since))
    assert [r.data["seq"] for r in hub.go_live(entry)] == [2, 3]
