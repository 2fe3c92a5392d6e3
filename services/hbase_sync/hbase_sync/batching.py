"""A batch of rows with the offsets they cover, and the policy that says when to flush it. Pure: time is passed in.

Rows are kept per (topic, partition) so that, when a rebalance takes partitions away, their unwritten rows (and their
offsets) can be dropped: the next owner reads them again from the last committed offset.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from hbase_sync.mapping import Row

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class BatchPolicy:
    """Flush when ``max_rows`` are waiting or the oldest waiting row is ``max_wait_s`` old."""

    max_rows: int
    max_wait_s: float

    def due(self, rows: int, oldest_at: float | None, now: float) -> bool:
        if rows >= self.max_rows:
            return True
        return rows > 0 and oldest_at is not None and now - oldest_at >= self.max_wait_s

    def wait_s(self, rows: int, oldest_at: float | None, now: float, idle_s: float) -> float:
        """How long the consumer may block before the batch is due (``idle_s`` when the batch is empty)."""
        if rows == 0 or oldest_at is None:
            return idle_s
        return max(0.0, min(idle_s, oldest_at + self.max_wait_s - now))


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
