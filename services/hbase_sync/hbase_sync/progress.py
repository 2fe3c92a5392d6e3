"""What the worker reports as it goes: rows written and rejected (metrics), and a progress line every 10 s."""

from __future__ import annotations

import logging
from collections.abc import Callable

from hbase_sync.mapping import KafkaRecord, Row
from hbase_sync.metrics import SyncMetrics
from hbase_sync.store import WriteResult

log = logging.getLogger("hbase_sync.worker")

PROGRESS_EVERY_S = 10.0
REJECT_LOGS_PER_INTERVAL = 20


class Progress:
    def __init__(self, metrics: SyncMetrics, clock: Callable[[], float]) -> None:
        self.metrics, self.clock = metrics, clock
        self.total_written = 0
        self._written_since = 0
        self._rejected_logged = 0
        self._last = clock()

    def written(self, result: WriteResult) -> None:
        for table, count in result.written.items():
            self.metrics.written.labels(table).inc(count)
            self.total_written += count
            self._written_since += count
        if result.stale:
            self.metrics.stale.inc(result.stale)

    def rejected(self, record: KafkaRecord, row: Row) -> None:
        """A record that goes to the deadletters table: counted, and logged (at most 20 per progress interval)."""
        self.metrics.deadletters.labels(row.rejected or "").inc()
        if self._rejected_logged < REJECT_LOGS_PER_INTERVAL:
            self._rejected_logged += 1
            log.warning("cannot map %s[%s]@%s (%s): written to the deadletters table", record.topic(),
                        record.partition(), record.offset(), row.rejected)

    def tick(self, batches: int, *, force: bool = False) -> None:
        """The progress line, when the interval is over (or ``force``); ``batches`` committed since start."""
        now = self.clock()
        elapsed = now - self._last
        if elapsed < PROGRESS_EVERY_S and not force:
            return
        if self._written_since or force:
            log.info("wrote %d rows in the last %.0f s (%.0f rows/s); %d written in %d batches since start",
                     self._written_since, elapsed, self._written_since / max(elapsed, 1e-9), self.total_written,
                     batches)
        self._written_since = 0
        self._rejected_logged = 0
        self._last = now
