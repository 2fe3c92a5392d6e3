"""Tails the stream job's output topics and hands batches of records to the event loop.

Raw readings in the canonical layout are handed over undecoded (``ws_bridge.lazy.PendingRaw``: identity, device and
event time read at once, for the de-duplication and the out-of-order flag); every other record is decoded here.

One confluent-kafka consumer in a thread per isolation level. ``read_committed`` by default (the job writes
transactionally); the live path of raw readings may read ``read_uncommitted`` with a ``RecentIdents`` window that drops
a reading seen before (a replay after an aborted transaction): see ``ws_bridge.live``.
Partitions are *assigned manually from the end* (no group membership, no commits), so every bridge replica sees every
record and a restart never sends old ones live. Topics or partitions that appear later are assigned from their
beginning (everything in them is new). Metadata is re-read every few seconds for that.

**Catch-up at start.** What the stream job committed before the bridge started but the sync workers have not stored in
HBase yet is in neither place a history-first client reads (HBase, and the records this bridge has seen). So the first
assignment starts each partition at the sync workers' committed offset (their group, ``catch_up_group``; at most
``catch_up_max`` records before the end), and the records before the end go to ``remember`` instead of ``deliver``:
history-first subscriptions get them, live ones never do. (Found by the chaos test: a bridge restarted while the
sync worker was still catching up after its own restart left a reconnecting client without days of aggregates.)
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import Future, wait
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]

from iotcommon.errors import MessageError
from iotcommon.topics import Topics
from ws_bridge.dedup import RecentIdents
from ws_bridge.group_offsets import committed_offsets
from ws_bridge.lazy import Live, pending
from ws_bridge.records import STREAMS, OrderTracker, decode, topic_of

log = logging.getLogger(__name__)

METADATA_REFRESH_S = 3.0
#: A partition with no fetch response this long after its assignment gets a new consumer. librdkafka can leave an
#: assigned partition waiting forever for an offset lookup that the broker answered with NOT_COORDINATOR (a broker
#: still loading its group coordinator, seen on a busy Kubernetes node): confluentinc/librdkafka#5586.
FETCH_START_S = 60.0

Partition = tuple[str, int]
Deliver = Callable[[list[Live]], None]


def unstarted(assigned_at: dict[Partition, float], high_watermark: Callable[[Partition], int], now: float,
              limit: float) -> list[Partition]:
    """The partitions assigned more than ``limit`` seconds ago whose fetcher has not had a response yet (its cached
    high watermark is still librdkafka's OFFSET_INVALID, -1001). Pure: ``high_watermark`` reads the consumer's
    cache."""
    return sorted(tp for tp, since in assigned_at.items() if now - since > limit and high_watermark(tp) < 0)


def catch_up_starts(ends: dict[Partition, int], stored: dict[Partition, int], most: int) -> dict[Partition, int]:
    """Where each partition's first read starts so that the records the sync workers have not stored yet (from their
    committed offset ``stored`` to the end) are read again: at most ``most`` records before the end; a partition
    without a commit has nothing stored, so its last ``most`` records. Pure."""
    starts: dict[Partition, int] = {}
    for tp, end in ends.items():
        committed = stored.get(tp, -1)
        start = end - most if committed < 0 else min(committed, end)
        starts[tp] = max(start, end - most, 0)
    return starts


def settle(futures: Iterable[Future[Any]]) -> None:
    """Wait until every request of an admin client has its answer (each has a request timeout), so the client can be
    destroyed in this thread, by its ``with`` block. A client left to the garbage collector can be collected inside
    one of librdkafka's own callbacks, which can crash the process (confluentinc/confluent-kafka-python#1761, #2131).
    (Not the cause of the segmentation fault of the bridge's CI tests: see ``ws_bridge.group_offsets``.)"""
    wait(list(futures))


def default_group_id() -> str:
    return f"ws-bridge-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class KafkaTail:
    """Start with ``start(deliver)``; ``deliver(records)`` is called from the tail thread with each batch."""

    def __init__(self, bootstrap: str, topics: Topics, *, group_id: str = "", batch_wait_ms: int = 20,
                 on_bad: Callable[[str, MessageError], None] | None = None, streams: tuple[str, ...] = STREAMS,
                 uncommitted: bool = False, dedup: RecentIdents | None = None, catch_up_group: str = "",
                 catch_up_max: int = 0) -> None:
        self._bootstrap = bootstrap
        self._stream_of = {topic_of(topics, stream): stream for stream in streams}
        self._uncommitted = uncommitted
        self._dedup = dedup
        self._group_id = group_id or default_group_id()
        self._batch_wait = batch_wait_ms / 1000
        self._on_bad = on_bad
        self._catch_up_group = catch_up_group
        self._catch_up_max = catch_up_max
        self._catching_up: dict[Partition, int] = {}  # -> the end at start: records before it go to ``remember``
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._assigned: dict[Partition, float] = {}  # -> when assigned (monotonic), for the fetch-start watchdog
        self._offsets: dict[Partition, int] = {}  # -> where the next read starts (assigned offset, then consumed + 1)
        self.consumers_recreated = 0
        self._tracker = OrderTracker()
        self._seen_cluster = False  # a metadata fetch has succeeded once
        self.connected = False
        self.records = 0
        self.ready = threading.Event()  # set once the first assignment (from the end) is in place

    def start(self, deliver: Deliver, remember: Deliver | None = None) -> None:
        """``deliver`` gets the new records; ``remember`` the catch-up records from before the start (not called
        without a ``catch_up_group``)."""
        self._thread = threading.Thread(target=self._run, args=(deliver, remember), name="kafka-tail", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _consumer(self) -> Consumer:
        return Consumer({
            "bootstrap.servers": self._bootstrap,
            "group.id": self._group_id,
            "enable.auto.commit": False,
            "isolation.level": "read_uncommitted" if self._uncommitted else "read_committed",
            "auto.offset.reset": "latest",
            # up to 50 ms for 64 KiB: far fewer fetches than "return at once", which under load cost Kafka more CPU
            # than the records themselves (docs/performance.md, "Fetch sizes"); adds at most 50 ms to live latency
            "fetch.wait.max.ms": 50,
            "fetch.min.bytes": 65_536,
            "enable.partition.eof": False,
            "client.id": self._group_id,
            "socket.keepalive.enable": True,
        })

    def _refresh(self, consumer: Consumer) -> None:
        """Assign partitions not yet assigned. Those that exist at the first successful metadata fetch start at their
        read_committed end; partitions (or topics) that appear later start at their beginning: all of it is new."""
        try:
            meta = consumer.list_topics(timeout=5)
        except KafkaException as exc:
            self.connected = False
            log.warning("Kafka metadata from %s failed: %s", self._bootstrap, exc)
            return
        first = not self._seen_cluster
        new: list[TopicPartition] = []
        for topic in self._stream_of:
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                continue
            new.extend(TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in info.partitions
                       if (topic, partition) not in self._assigned)
        if new and first:
            try:
                new = self._ends(new)
            except KafkaException as exc:
                log.warning("could not read the end offsets from %s (will retry): %s", self._bootstrap, exc)
                return
            if self._catch_up_group and self._catch_up_max > 0:
                new = self._catch_up(new)
        self._seen_cluster = True
        self.connected = True
        if new:
            for tp in new:
                self._assigned[(tp.topic, tp.partition)] = time.monotonic()
                self._offsets[(tp.topic, tp.partition)] = tp.offset
            consumer.incremental_assign(new)
            log.info("tailing %s", ", ".join(f"{tp.topic}[{tp.partition}]"
                                             f"{' from the end' if first else ' from the start'}" for tp in new))

    def _ends(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        """The end of each partition for this tail's isolation level, resolved now (read_committed: the last stable
        offset, so records of transactions still open are not skipped; read_uncommitted: the high watermark): records
        produced after ``ready`` is set are never missed."""
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        with AdminClient({"bootstrap.servers": self._bootstrap}) as admin:
            futures = admin.list_offsets({TopicPartition(tp.topic, tp.partition): latest for tp in partitions},
                                         isolation_level=IsolationLevel.READ_UNCOMMITTED if self._uncommitted
                                         else IsolationLevel.READ_COMMITTED, request_timeout=10)
            settle(futures.values())
            return [TopicPartition(tp.topic, tp.partition, future.result().offset) for tp, future in futures.items()]

    def _catch_up(self, ends: list[TopicPartition]) -> list[TopicPartition]:
        """The first assignment moved back to the sync workers' committed offsets (see the module doc; read as
        ``ws_bridge.group_offsets`` says, never with an AdminClient)."""
        stored: dict[Partition, int] = {}
        try:
            for tp in committed_offsets(self._bootstrap, self._catch_up_group,
                                        [TopicPartition(tp.topic, tp.partition) for tp in ends],
                                        client_id=f"{self._group_id}-catch-up", stop=self._stop):
                if tp.error is None:
                    stored[(tp.topic, tp.partition)] = tp.offset
        except KafkaException as exc:  # no catch-up then: the bridge still starts
            log.warning("could not read group %s's offsets (no catch-up): %s", self._catch_up_group, exc)
            return ends
        end_of = {(tp.topic, tp.partition): tp.offset for tp in ends}
        starts = catch_up_starts(end_of, stored, self._catch_up_max)
        self._catching_up = {tp: end for tp, end in end_of.items() if starts[tp] < end}
        if self._catching_up:
            log.info("catching up on what group %s has not stored yet: %s", self._catch_up_group,
                     ", ".join(f"{t}[{p}] {end - starts[(t, p)]}" for (t, p), end in sorted(self._catching_up.items())))
        return [TopicPartition(t, p, starts[(t, p)]) for t, p in end_of]

    def _run(self, deliver: Deliver, remember: Deliver | None) -> None:
        consumer = self._consumer()
        try:
            self._refresh(consumer)
            missing = [t for t in self._stream_of if not any(k[0] == t for k in self._assigned)]
            if missing:
                log.info("waiting for topic(s) %s to appear", ", ".join(missing))
            self.ready.set()
            refreshed = time.monotonic()
            while not self._stop.is_set():
                try:
                    if time.monotonic() - refreshed > METADATA_REFRESH_S or not self._seen_cluster:
                        self._refresh(consumer)
                        consumer = self._restart_if_stuck(consumer)
                        refreshed = time.monotonic()
                    if not self._assigned:
                        self._stop.wait(0.5)
                        continue
                    batch, older = self._decode(consumer.consume(num_messages=2000, timeout=self._batch_wait))
                    self.records += len(batch) + len(older)
                    if older and remember is not None:
                        remember(older)
                    if batch:
                        deliver(batch)
                except KafkaException as exc:  # the broker went away, a partition moved, ...: keep tailing
                    log.warning("Kafka: %s", exc)
                    self._stop.wait(1.0)
        finally:
            consumer.close()

    def _restart_if_stuck(self, consumer: Consumer) -> Consumer:
        """A new consumer, assigned where the old one stood, if a partition's fetcher never started."""
        def high(tp: Partition) -> int:
            return int(consumer.get_watermark_offsets(TopicPartition(*tp), cached=True)[1])

        stuck = unstarted(self._assigned, high, time.monotonic(), FETCH_START_S)
        if not stuck:
            return consumer
        log.warning("no fetch from %s in %.0f s since assigned (librdkafka#5586): new consumer, same offsets",
                    ", ".join(f"{t}[{p}]" for t, p in stuck), FETCH_START_S)
        consumer.close()
        consumer = self._consumer()
        now = time.monotonic()
        self._assigned = dict.fromkeys(self._assigned, now)
        consumer.incremental_assign([TopicPartition(t, p, self._offsets[(t, p)]) for t, p in self._assigned])
        self.consumers_recreated += 1
        return consumer

    def _decode(self, messages: list[Message]) -> tuple[list[Live], list[Live]]:
        """(new records, catch-up records)."""
        batch: list[Live] = []
        older: list[Live] = []
        catching_up = self._catching_up
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log.warning("Kafka: %s", err)
                continue
            topic = message.topic()
            tp = (topic or "", message.partition() or 0)
            offset = message.offset() or 0
            self._offsets[tp] = offset + 1
            stream = self._stream_of.get(topic or "")
            if stream is None:
                continue
            target = batch
            if catching_up and tp in catching_up:
                if offset < catching_up[tp]:
                    target = older
                if offset + 1 >= catching_up[tp]:
                    del catching_up[tp]
            kind, kafka_ts = message.timestamp()
            if stream == "raw":  # most reach no client: decoded when one asks (ws_bridge.lazy)
                raw = pending(message.value(), kafka_ts if kind else None, self._tracker)
                if raw is not None:
                    if self._dedup is None or self._dedup.first_time(raw.ident):
                        target.append(raw)
                    continue
            try:
                record = decode(stream, message.value(), kafka_ts=kafka_ts if kind else None, tracker=self._tracker)
            except MessageError as exc:
                log.warning("skipping a %s record at %s[%s]@%s: %s", stream, topic,
                            message.partition(), message.offset(), exc)
                if self._on_bad is not None:
                    self._on_bad(stream, exc)
                continue
            if self._dedup is None or self._dedup.first_time(record.ident):
                target.append(record)
        return batch, older
