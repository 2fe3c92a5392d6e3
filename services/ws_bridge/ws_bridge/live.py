"""Where the bridge's live records come from: one Kafka tail, or two when raw readings take the uncommitted live path.

``live_raw = committed``: one ``read_committed`` tail of every stream; a reading shows once the stream job commits its
transaction (at its next checkpoint, 2 s by default).
``live_raw = uncommitted`` (default): raw readings come from a ``read_uncommitted`` tail with a ``RecentIdents``
window (a replay after an aborted transaction is not shown twice); aggregates, late readings and dead letters keep
their ``read_committed`` tail. Storage (the sync worker, HBase, history) is unchanged: exactly once, read_committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from iotcommon.errors import MessageError
from iotcommon.topics import Topics
from ws_bridge.config import BridgeConfig
from ws_bridge.dedup import RecentIdents
from ws_bridge.hub import RECENT_RECORDS
from ws_bridge.records import STREAMS
from ws_bridge.tail import Deliver, KafkaTail

OnBad = Callable[[str, MessageError], None]


class AllReady:
    """Set once every one of ``events`` is set (the ``ready`` of several tails)."""

    def __init__(self, events: Sequence[threading.Event]) -> None:
        self._events = events

    def is_set(self) -> bool:
        return all(e.is_set() for e in self._events)

    def wait(self, timeout: float | None = None) -> bool:
        return all(e.wait(timeout) for e in self._events)


class LiveTails:
    """Several Kafka tails behind one live source: started and stopped together, connected when all are."""

    def __init__(self, tails: Sequence[KafkaTail]) -> None:
        self.tails = tuple(tails)
        self.ready = AllReady([t.ready for t in self.tails])

    @property
    def connected(self) -> bool:
        return all(t.connected for t in self.tails)

    def start(self, deliver: Deliver, remember: Deliver | None = None) -> None:
        for tail in self.tails:
            tail.start(deliver, remember)

    def stop(self, timeout: float = 10.0) -> None:
        for tail in self.tails:
            tail.stop(timeout)


def live_source(config: BridgeConfig, on_bad: OnBad | None = None) -> LiveTails:
    """The live source ``config.live_raw`` asks for."""
    topics = Topics(config.topic_prefix)

    def tail(streams: tuple[str, ...], uncommitted: bool = False) -> KafkaTail:
        return KafkaTail(config.kafka_bootstrap, topics, group_id=config.consumer_group,
                         batch_wait_ms=config.batch_wait_ms, on_bad=on_bad, streams=streams, uncommitted=uncommitted,
                         dedup=RecentIdents(config.live_dedup) if uncommitted else None,
                         catch_up_group=config.sync_group_id, catch_up_max=RECENT_RECORDS)

    if config.live_raw == "committed":
        return LiveTails([tail(STREAMS)])
    return LiveTails([tail(("raw",), uncommitted=True), tail(tuple(s for s in STREAMS if s != "raw"))])
