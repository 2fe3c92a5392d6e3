"""A batch of rows with the offsets they cover, and the policy that says when to flush it. Pure: time is passed in.

Rows are kept per (topic, partition) so that, when a rebalance takes partitions away, their unwritten rows (and their
offsets) can be dropped: the next owner reads them again from the last committed offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from hbase_sync.mapping import Row

TopicPartition = tuple[str, int]


BUSY_POLL_S = 0.05  # longest poll while a write is in flight: its end (and so the next write) is noticed this soon


@dataclass(frozen=True)
class BatchPolicy:
    """When to write: as soon as the writer is free and the consumer has nothing more already fetched, so a batch
    holds what arrived during the previous write (it grows with the load, not with a timer). ``max_rows`` bounds a
    batch; ``max_wait_s`` bounds how long a row waits for a busy writer.

    How to poll is part of the policy: librdkafka's ``consume(n, timeout)`` returns only once it has ``n`` records or
    the timeout has passed, so an empty batch waits for its first record alone, and a batch whose writer is free takes
    what is queued without waiting (a timed wait there put up to a second on every row at low rates).
    """

    max_rows: int
    max_wait_s: float

    def poll(self, rows: int, oldest_at: float | None, now: float, idle_s: float,
             writer_free: bool) -> tuple[int, float]:
        """(num_messages, timeout) of the next consume."""
        if rows == 0 or oldest_at is None:
            return 1, idle_s
        room = max(1, self.max_rows - rows)
        if writer_free:
            return room, 0.0
        return room, max(0.0, min(idle_s, BUSY_POLL_S, oldest_at + self.max_wait_s - now))

    def due(self, rows: int, oldest_at: float | None, now: float, caught_up: bool) -> bool:
        """``caught_up``: the writer is free and the last poll got less than it asked for (nothing more is queued)."""
        if rows == 0:
            return False
        if caught_up or rows >= self.max_rows:
            return True
        return oldest_at is not None and now - oldest_at >= self.max_wait_s


@dataclass
class Batch:
    """Rows waiting to be written and, per partition, the offset to commit once they are (last offset + 1)."""

    _rows: dict[TopicPartition, list[Row]] = field(default_factory=dict)
    _next: dict[TopicPartition, int] = field(default_factory=dict)
    _positions: dict[TopicPartition, int] = field(default_factory=dict)
    oldest_at: float | None = None
    size: int = 0

    def add(self, topic: str, partition: int, offset: int, row: Row, now: float) -> None:
        tp = (topic, partition)
        self._rows.setdefault(tp, []).append(row)
        self._next[tp] = max(self._next.get(tp, 0), offset + 1)
        self.size += 1
        if self.oldest_at is None:
            self.oldest_at = now

    def rows(self) -> Iterator[Row]:
        for rows in self._rows.values():
            yield from rows

    def offsets(self) -> dict[TopicPartition, int]:
        """Offsets to commit once every row is written: after the last row of each partition, or the consumer's
        position if it is further (it skips transaction markers, which are never delivered as records)."""
        return {tp: max(offset, self._positions.get(tp, 0)) for tp, offset in self._next.items()}

    def stamp(self, positions: dict[TopicPartition, int]) -> None:
        """Record the consumer's positions while this batch holds every record consumed so far."""
        for tp, position in positions.items():
            if tp in self._next and position >= self._next[tp]:
                self._positions[tp] = position

    def partitions(self) -> set[TopicPartition]:
        return set(self._next)

    def drop(self, partitions: Iterable[TopicPartition]) -> int:
        """Forget the rows and offsets of these partitions (revoked before they were written). Returns rows dropped."""
        dropped = 0
        for tp in partitions:
            dropped += len(self._rows.pop(tp, ()))
            self._next.pop(tp, None)
            self._positions.pop(tp, None)
        self.size -= dropped
        if self.size == 0:
            self.oldest_at = None
        return dropped

    def absorb(self, later: Batch) -> Batch:
        """Append a later batch's rows after this one's (per partition) and return self: a failed batch takes the
        rows read since back in, so one write and one commit cover both, in order."""
        for tp, rows in later._rows.items():
            self._rows.setdefault(tp, []).extend(rows)
        for tp, offset in later._next.items():
            self._next[tp] = max(self._next.get(tp, 0), offset)
        for tp, position in later._positions.items():
            self._positions[tp] = max(self._positions.get(tp, 0), position)
        self.size += later.size
        if self.oldest_at is None:
            self.oldest_at = later.oldest_at
        return self

    def clear(self) -> None:
        self._rows.clear()
        self._next.clear()
        self._positions.clear()
        self.size = 0
        self.oldest_at = None
