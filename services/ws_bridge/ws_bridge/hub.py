"""Fan-out: live records -> every matching subscription, each client behind its own bounded queue.

Everything here runs on the event loop thread (the Kafka tail hands batches over with ``call_soon_threadsafe``), so
there are no locks. ``Hub.publish`` never awaits: a slow client only fills its own ``Session`` queue.

Overflow policy (docs/bridge-protocol.md): a session holds at most ``limit`` records. When a new batch would exceed
it, the *oldest* queued data frames are dropped (control frames never are) and the client next receives an
``overflow`` frame with the number of records it missed, before the newer data. It can re-subscribe with ``since`` to
fill the gap from HBase. A client that accepts nothing for ``send_timeout_s`` is closed (see app.py).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ws_bridge import protocol
from ws_bridge.lazy import Live, OnBad, resolved
from ws_bridge.protocol import Filter, Subscribe
from ws_bridge.records import STREAMS, Record


@dataclass(frozen=True, slots=True)
class Close:
    """Queued after the last frame to send: close the connection with this code."""

    code: int
    reason: str


MAX_MERGED_CHARS = 1 << 20  # coalesced data frames stay below ~1 MB
RECENT_RECORDS = 5000  # per stream, kept for history-first subscriptions (covers the sync worker's lag)


class Session:
    """The outbound side of one connection: a bounded queue of frames (text, records in it)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._frames: deque[tuple[str, int]] = deque()
        self._close: Close | None = None
        self._pending = 0
        self._dropped = 0
        self.dropped_total = 0
        self.sent_records = 0
        self.too_slow = False  # set when a send did not complete within the send timeout
        self._wake = asyncio.Event()
        self.subscriptions: dict[str, Subscription] = {}

    @property
    def pending_records(self) -> int:
        return self._pending

    def offer(self, frame: str, records: int = 0) -> int:
        """Queue a frame (``records`` = 0: a control frame, never dropped). Returns the records dropped now."""
        self._frames.append((frame, records))
        # the count is set once, already within its bound: a reader in another thread (/metrics, a test) never sees
        # it above the limit between the append and the drops
        pending, dropped = self._pending + records, 0
        while pending > self.limit:
            count = self._drop_oldest_data()
            pending -= count
            dropped += count
        self._pending = pending
        if dropped:
            self._dropped += dropped
            self.dropped_total += dropped
        self._wake.set()
        return dropped

    def note_dropped(self, records: int) -> None:
        """Records lost before they reached the queue (a history-first subscription's overfull buffer)."""
        if records:
            self._dropped += records
            self.dropped_total += records
            self._wake.set()

    @property
    def closing(self) -> bool:
        return self._close is not None

    def close_after_queued(self, code: int, reason: str) -> None:
        """Send what is queued, then close."""
        self._close = Close(code, reason)
        self._wake.set()

    def _drop_oldest_data(self) -> int:
        """Removes the oldest data frame and returns its records (the caller lowers the pending count)."""
        for index, (_, count) in enumerate(self._frames):
            if count:
                del self._frames[index]
                return count
        raise AssertionError("pending records without a data frame")  # pragma: no cover

    async def next_frame(self) -> tuple[str, int] | Close:
        """The next (frame, records in it); an ``overflow`` notice comes first after drops; Close at the end."""
        while not self._frames and not self._dropped and self._close is None:
            self._wake.clear()
            await self._wake.wait()
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return protocol.overflow(dropped, self.dropped_total), 0
        if not self._frames:
            assert self._close is not None
            return self._close
        frame, count = self._frames.popleft()
        if count and self._frames and self._frames[0][1]:
            frame, count = self._coalesce(frame, count)
        self._pending -= count
        self.sent_records += count
        return frame, count

    def _coalesce(self, frame: str, count: int) -> tuple[str, int]:
        """Merge the data frames queued behind ``frame`` for the same subscription and phase into one frame.

        A client that falls behind thus gets fewer, larger frames (adaptive batching) instead of a growing backlog
        of small ones; a client that keeps up is sent each batch as it comes.
        """
        marker = frame.find('"records":[')
        if marker < 0 or not frame.endswith("]}"):
            return frame, count
        head_end = marker + len('"records":[')
        head = frame[:head_end]
        parts = [frame[head_end:-2]]
        size = len(frame)
        while self._frames and size < MAX_MERGED_CHARS:
            following, more = self._frames[0]
            if not more or not following.startswith(head):
                break
            self._frames.popleft()
            count += more
            parts.append(following[head_end:-2])
            size += len(following) - head_end
        if len(parts) == 1:
            return frame, count
        return head + ",".join(parts) + "]}", count


@dataclass(eq=False)
class Subscription:
    session: Session
    sub: Subscribe
    live: bool
    buffered: list[Record] = field(default_factory=list)  # live records that arrived while history was loading
    buffer_dropped: int = 0
    handle: int = -1


class Hub:
    """Routes published records to subscriptions. One per bridge process.

    Raw readings may come undecoded (``ws_bridge.lazy.PendingRaw``): they are decoded when a live subscription or a
    history-first buffer selects them; one that fails the check then goes to ``on_bad`` and to no client.
    """

    def __init__(self, recent: int = RECENT_RECORDS, on_bad: OnBad | None = None) -> None:
        self._subs: dict[str, dict[int, Subscription]] = {stream: {} for stream in STREAMS}
        # the newest live records of each stream: a history-first subscription starts with those that match, so a
        # record the sync worker has not stored yet when HBase is read still reaches the client (history de-dupes)
        self._recent: dict[str, deque[Live]] = {stream: deque(maxlen=recent) for stream in STREAMS}
        self.on_bad = on_bad
        self._ids = itertools.count()
        self.latest_ms: dict[str, int] = {}
        self.published = 0

    def subscribe(self, session: Session, sub: Subscribe) -> Subscription:
        """Register a subscription: live at once, or buffering live records until ``go_live`` (history first)."""
        entry = Subscription(session, sub, live=not sub.wants_history, handle=next(self._ids))
        if sub.wants_history:
            since = sub.since_ms if sub.since_ms is not None else -1
            entry.buffered = resolved([r for r in self._recent[sub.stream]
                                       if r.event_ms >= since and sub.filter.matches(r)], self.on_bad)
        self._subs[sub.stream][entry.handle] = entry
        session.subscriptions[sub.id] = entry
        return entry

    def go_live(self, entry: Subscription) -> list[Record]:
        """Switch a history-first subscription to live; returns the records buffered meanwhile (in arrival order)."""
        buffered, entry.buffered = entry.buffered, []
        entry.live = True
        return buffered

    def unsubscribe(self, session: Session, sub_id: str) -> bool:
        entry = session.subscriptions.pop(sub_id, None)
        if entry is None:
            return False
        self._subs[entry.sub.stream].pop(entry.handle, None)
        return True

    def drop_session(self, session: Session) -> None:
        for sub_id in list(session.subscriptions):
            self.unsubscribe(session, sub_id)

    @property
    def subscription_count(self) -> int:
        return sum(len(subs) for subs in self._subs.values())

    def publish(self, records: Iterable[Live]) -> None:
        """Fan a batch out. Each distinct filter is matched once and each distinct frame is encoded once."""
        records = list(records)
        by_stream: dict[str, list[Live]] = {}
        if records and all(r.stream == records[0].stream for r in records):  # a tail's batch is mostly one stream
            by_stream[records[0].stream] = records
        else:
            for record in records:
                by_stream.setdefault(record.stream, []).append(record)
        for stream, batch in by_stream.items():
            newest = max(r.event_ms for r in batch)
            if newest > self.latest_ms.get(stream, -1):
                self.latest_ms[stream] = newest
            self.published += len(batch)
            self._recent[stream].extend(batch)
            subs = self._subs[stream]
            if subs:
                self._fan_out(stream, batch, list(subs.values()))

    def remember(self, records: Iterable[Live]) -> None:
        """Records from before this bridge started that the sync workers had not stored in HBase yet (the Kafka
        tail's catch-up). They join the recent records, and go to every history-first subscription (buffered while
        it loads its history, else as live frames: history it lacks, arriving late, once at start); never to
        subscriptions without history (they asked for what happens from now on)."""
        by_stream: dict[str, list[Live]] = {}
        for record in records:
            by_stream.setdefault(record.stream, []).append(record)
        for stream, batch in by_stream.items():
            self._recent[stream].extend(batch)
            for entry in list(self._subs[stream].values()):
                if entry.sub.wants_history:
                    since = entry.sub.since_ms if entry.sub.since_ms is not None else -1
                    self._fan_out(stream, [r for r in batch if r.event_ms >= since], [entry])

    def _fan_out(self, stream: str, batch: list[Live], subs: list[Subscription]) -> None:
        matched: dict[Filter, list[Record]] = {}
        frames: dict[tuple[Filter, str], tuple[str, int]] = {}
        for entry in subs:
            filt = entry.sub.filter
            selected = matched.get(filt)
            if selected is None:
                selected = matched[filt] = resolved(filt.select(stream, batch), self.on_bad)
            if not selected:
                continue
            if not entry.live:
                room = entry.session.limit - len(entry.buffered)
                entry.buffered.extend(selected[:max(room, 0)])
                entry.buffer_dropped += max(len(selected) - max(room, 0), 0)
                continue
            key = (filt, entry.sub.id)
            frame = frames.get(key)
            if frame is None:
                frame = frames[key] = (protocol.data(entry.sub.id, stream, "live", [r.item for r in selected]),
                                       len(selected))
            entry.session.offer(*frame)
