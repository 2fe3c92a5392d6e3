"""A bridge that starts while the sync workers are behind: where its Kafka tail starts reading (pure), and who gets
the catch-up records (the hub, no I/O). The real-Kafka side is in test_bridge_live_kafka.py."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from confluent_kafka import KafkaError, KafkaException

import ws_bridge
from ws_bridge.group_offsets import coordinator_moving
from ws_bridge.hub import Hub, Session
from ws_bridge.protocol import Filter, Subscribe
from ws_bridge.records import decode
from ws_bridge.tail import catch_up_starts

P0, P1, P2 = ("t.aggregates", 0), ("t.aggregates", 1), ("t.raw", 0)


def test_the_tail_starts_where_the_sync_workers_committed() -> None:
    assert catch_up_starts({P0: 120, P1: 80}, {P0: 100, P1: 80}, most=5000) == {P0: 100, P1: 80}


def test_the_catch_up_is_at_most_the_given_number_of_records_per_partition() -> None:
    assert catch_up_starts({P0: 20_000}, {P0: 3}, most=5000) == {P0: 15_000}


def test_a_partition_the_sync_workers_never_committed_starts_its_last_records_back() -> None:
    assert catch_up_starts({P0: 20_000, P1: 40, P2: 0}, {}, most=5000) == {P0: 15_000, P1: 0, P2: 0}


def test_a_commit_beyond_the_tails_end_reads_nothing_old() -> None:
    # read_committed end (last stable offset) can be behind an offset the workers committed a moment later
    assert catch_up_starts({P0: 50}, {P0: 60}, most=5000) == {P0: 50}


def readings(msg: SimpleNamespace, *seqs: int) -> list:  # type: ignore[type-arg]
    return [decode("raw", msg.reading("TH1", f"2020-01-01T{s:02d}:00:00Z", float(s), seq=s)) for s in seqs]


def seqs_of(frames: list[tuple[str, int]]) -> list[int]:
    return [r["data"]["seq"] for f, _ in frames for r in json.loads(f)["records"]]


def test_history_first_subscriptions_get_the_catch_up_live_ones_never(msg: SimpleNamespace) -> None:
    hub = Hub()
    live, loading, loaded = Session(100), Session(100), Session(100)
    hub.subscribe(live, Subscribe("l", "raw", Filter(frozenset({"site1"}), None)))
    waiting = hub.subscribe(loading, Subscribe("h", "raw", Filter(frozenset({"site1"}), None), last=10))
    done = hub.subscribe(loaded, Subscribe("h", "raw", Filter(frozenset({"site1"}), None), last=10))
    hub.go_live(done)  # its history came before the catch-up did
    hub.remember(readings(msg, 1, 2))
    assert not live._frames
    assert [r.data["seq"] for r in hub.go_live(waiting)] == [1, 2]
    assert seqs_of(list(loaded._frames)) == [1, 2]
    assert hub.published == 0  # not counted as published live


def test_a_later_history_subscription_starts_with_the_catch_up(msg: SimpleNamespace) -> None:
    hub = Hub()
    hub.remember(readings(msg, 1, 2))
    hub.publish(readings(msg, 3))
    session = Session(100)
    since = readings(msg, 2)[0].event_ms
    entry = hub.subscribe(session, Subscribe("h", "raw", Filter(frozenset({"site1"}), None), since_ms=since))
    assert [r.data["seq"] for r in hub.go_live(entry)] == [2, 3]


def test_the_catch_up_respects_a_subscriptions_since(msg: SimpleNamespace) -> None:
    hub = Hub()
    session = Session(100)
    since = readings(msg, 5)[0].event_ms
    entry = hub.subscribe(session, Subscribe("h", "raw", Filter(None, None), since_ms=since))
    hub.remember(readings(msg, 4, 5, 6))
    assert [r.data["seq"] for r in hub.go_live(entry)] == [5, 6]


def test_a_coordinator_that_moves_or_loads_is_asked_again_other_errors_are_final() -> None:
    for code in (KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                 KafkaError.COORDINATOR_LOAD_IN_PROGRESS):
        assert coordinator_moving(KafkaException(KafkaError(code)))
    assert not coordinator_moving(KafkaException(KafkaError(KafkaError._TIMED_OUT)))
    assert not coordinator_moving(KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)))
    assert not coordinator_moving(KafkaException("no KafkaError"))


def test_no_bridge_module_asks_a_groups_offsets_with_an_admin_client() -> None:
    """AdminClient.list_consumer_group_offsets crashes the process when a starting broker answers NOT_COORDINATOR
    (librdkafka#5040, ws_bridge.group_offsets): the catch-up once took the CI's pytest process down with it."""
    sources = sorted(Path(ws_bridge.__file__).parent.glob("*.py"))
    assert sources
    assert [p.name for p in sources if "list_consumer_group_offsets(" in p.read_text()] == []
