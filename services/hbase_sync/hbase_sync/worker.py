"""The consume -> map -> batch -> write -> commit loop.

Offsets are committed (per partition, synchronously) only after every row they cover is in HBase, so a crash at any
point loses nothing: the uncommitted records are read again and rewritten onto the same rows. While HBase is down the
worker pauses its partitions (backpressure: nothing more is fetched), keeps polling so it stays in the group, retries
with exponential backoff, and resumes by itself once a write succeeds. Partitions revoked meanwhile lose their
unwritten rows from the batch, uncommitted, so the next owner reads them again. What an outage means (retry,
probe, give up) is decided by ``outage.Outage``; commits are ``offsets.Committer``'s, counts ``progress.Progress``'.
The consumer's subscription, pausing, and its replacement when it is not let into its group within the join timeout
are ``group.Group``'s.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from hbase_sync.backoff import Backoff
from hbase_sync.batching import Batch, BatchPolicy
from hbase_sync.group import Group, names
from hbase_sync.mapping import Mapper, Row
from hbase_sync.metrics import Health, SyncMetrics
from hbase_sync.offsets import Committer, Consumer, Record
from hbase_sync.outage import Outage
from hbase_sync.progress import Progress
from hbase_sync.store import WriteResult
from iotcommon.errors import ServiceUnavailable

log = logging.getLogger("hbase_sync.worker")

IDLE_POLL_S = 0.5  # longest blocking poll: bounds how late SIGTERM and the health tick are seen


class Store(Protocol):
    def write(self, rows: Sequence[Row]) -> WriteResult: ...
    def close(self) -> None: ...


class Worker:
    def __init__(
        self,
        consumer: Consumer,
        store: Store,
        mapper: Mapper,
        policy: BatchPolicy,
        backoff: Backoff,
        *,
        retries: int,
        stop: threading.Event,
        metrics: SyncMetrics | None = None,
        health: Health | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        join_timeout_s: float = 0.0,
        new_consumer: Callable[[], Consumer] | None = None,
    ) -> None:
        self.store, self.mapper = store, mapper
        self.policy = policy
        self.outage = Outage(retries, backoff)
        self.stop = stop
        self.metrics = metrics or SyncMetrics()
        self.health = health or Health()
        self.clock, self.sleep = clock, sleep
        self.batch = Batch()
        self.progress = Progress(self.metrics, clock)
        self.commits = Committer(consumer, self.metrics, clock)
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hbase-write")
        self._inflight: tuple[Future[WriteResult], Batch] | None = None
        self.group = Group(consumer, mapper.input_topics, self.metrics, self.commits, clock, on_revoke=self._on_revoke,
                           on_lost=self._on_lost, join_timeout_s=join_timeout_s, new_consumer=new_consumer)

    @property
    def paused(self) -> bool:
        return self.group.paused

    # -- main loop --------------------------------------------------------------------------------------------------

    def run(self) -> None:
        self.group.subscribe()
        self.health.tick("running", "")
        try:
            while not self.stop.is_set():
                writer_free = self._inflight is None or self._inflight[0].done()
                wanted, timeout = self.policy.poll(self.batch.size, self.batch.oldest_at, self.clock(), IDLE_POLL_S,
                                                   writer_free)
                records = self.group.consumer.consume(num_messages=wanted, timeout=timeout)
                self._accept(records)
                if self._inflight is None and not self.batch.size:
                    self.group.replace_if_overdue()
                caught_up = writer_free and len(records) < wanted
                if self.policy.due(self.batch.size, self.batch.oldest_at, self.clock(), caught_up):
                    self._dispatch()
                elif self._inflight is not None and self._inflight[0].done():
                    self._settle(retry=True, final=False)  # commit as soon as the write is done
                elif self._inflight is None and self.batch.size == 0 and not self.paused:
                    self.commits.commit_idle()
                self.health.tick()
                self.progress.tick(self.commits.batches)
        finally:
            self._shutdown()

    def _shutdown(self) -> None:
        self.health.tick("stopping")
        self._settle(retry=True, final=True)
        if self.batch.size:
            log.info("stopping: flushing %d rows", self.batch.size)
            self._flush(final=True)
        self._writer.shutdown(wait=True)
        self.group.consumer.close()  # commits nothing by itself (auto-commit is off); leaves the group
        self.store.close()
        self.progress.tick(self.commits.batches, force=True)
        log.info("stopped: %d rows written in %d batches", self.progress.total_written, self.commits.batches)

    # -- records ----------------------------------------------------------------------------------------------------

    def _accept(self, records: Sequence[Record]) -> None:
        if not records:
            return
        now = self.clock()
        consumed: Counter[str] = Counter()
        for record in records:
            err = record.error()
            if err is not None:
                self._kafka_error(err)
                continue
            row = self.mapper.map(record)
            if row.rejected is not None:
                self.progress.rejected(record, row)
            topic = record.topic() or ""
            consumed[topic] += 1
            self.batch.add(topic, record.partition() or 0, record.offset() or 0, row, now)
        for topic, count in consumed.items():
            self.metrics.consumed.labels(topic).inc(count)

    def _kafka_error(self, err: KafkaError) -> None:
        if err.code() == KafkaError._PARTITION_EOF:
            return
        self.metrics.errors.labels("kafka").inc()
        if err.fatal():
            raise KafkaException(err)
        log.warning("Kafka: %s", err.str())

    # -- writes: one batch in flight while the next one fills -------------------------------------------------------

    def _dispatch(self) -> None:
        """Hand the full batch to the writer thread, after the previous one is written and committed. HBase works on
        one batch while this thread reads and maps the next (the socket wait releases the GIL)."""
        self._settle(retry=True, final=False)
        if self.batch.size == 0:
            return
        self.commits.stamp(self.batch)
        batch, self.batch = self.batch, Batch()
        self._inflight = (self._writer.submit(self._timed_write, list(batch.rows())), batch)

    def _timed_write(self, rows: list[Row]) -> WriteResult:
        started = self.clock()
        result = self.store.write(rows)
        self.metrics.batch_seconds.observe(self.clock() - started)
        self.metrics.batch_rows.observe(len(rows))
        return result

    def _settle(self, *, retry: bool, final: bool) -> None:
        """Wait for the batch in flight. Written: commit its offsets. Failed: take its rows back in front of the
        current batch, then (``retry``) write both synchronously with backoff, paused, until HBase is back."""
        if self._inflight is None:
            return
        future, batch = self._inflight
        self._inflight = None
        try:
            result = future.result()
        except ServiceUnavailable as exc:
            self.batch = batch.absorb(self.batch)
            if retry:
                self._flush(final=final, failed=exc)
            return
        self.metrics.hbase_up.set(1)
        self.progress.written(result)
        self.commits.commit(batch.offsets())

    def _flush(self, *, final: bool, failed: ServiceUnavailable | None = None) -> bool:
        """Write the current batch in this thread, then commit. While HBase fails: pause, back off, retry (until it
        is back, unless final or stopping: then the quick retries are all). Returns True if the batch was written."""
        try:
            while True:
                if failed is not None:  # the write that failed in the writer thread counts as attempt 1
                    exc, failed = failed, None
                else:
                    self.commits.stamp(self.batch)
                    rows, offsets = list(self.batch.rows()), self.batch.offsets()
                    if not rows:  # nothing left to write (a rebalance took the partitions): consume again
                        self.batch.clear()
                        self.group.resume()
                        return True
                    try:
                        result = self._timed_write(rows)
                    except ServiceUnavailable as error:
                        exc = error
                    else:
                        self.metrics.hbase_up.set(1)
                        self.progress.written(result)
                        self.commits.commit(offsets)
                        self.batch.clear()
                        recovery = self.outage.succeeded(self.clock())
                        if recovery:
                            self.group.resume()
                            self.health.tick("running", "")
                            log.info("HBase is back after %.1f s (%d attempts): wrote %d rows, committed, consumption "
                                     "resumed", recovery.outage_s, recovery.attempts, len(rows))
                        return True
                if not self._write_failed(exc, self.batch.size, final or self.stop.is_set()):
                    return False
        finally:
            self.outage.end()

    def _write_failed(self, exc: ServiceUnavailable, rows: int, stopping: bool) -> bool:
        """Carry out what the outage decides after one failed write. Returns False to give up (only when stopping),
        True to retry after the wait."""
        failure = self.outage.failed(self.clock(), stopping=stopping)
        self.metrics.errors.labels("hbase").inc()
        self.metrics.hbase_up.set(0)
        if failure.started:
            self.group.pause()
            log.warning("HBase write of %d rows failed: %s. Consumption paused; nothing committed; retrying",
                        rows, exc)
        else:
            log.info("HBase write retry %d failed: %s", failure.attempt - 1, exc)
        if failure.exhausted:
            log.error("HBase unavailable for %.1f s (%d retries): staying paused with %d unwritten rows, probing every "
                      "%.1f s until it is back", failure.outage_s, self.outage.retries, rows,
                      self.outage.backoff.max_s)
            self.health.tick("paused", f"HBase unavailable: {exc}")
        if failure.give_up:
            log.error("stopping with %d unwritten rows: their offsets are not committed, so they will be read again",
                      rows)
            self.batch.clear()
            return False
        self._wait(failure.wait_s)
        return True

    def _wait(self, seconds: float) -> None:
        """Sleep while staying in the group: poll the (paused) consumer. Records still arriving join the batch."""
        deadline = self.clock() + seconds
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            if self.stop.is_set():  # stopping: the group no longer matters, just wait out the backoff
                self.sleep(remaining)
                return
            self.group.pause()  # a rebalance may have assigned new, unpaused partitions
            self._accept(self.group.consumer.consume(num_messages=1000, timeout=min(IDLE_POLL_S, remaining)))
            self.health.tick()

    # -- rebalances: what happens to the rows held for partitions that leave -----------------------------------------

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if partitions:
            log.info("revoked %s", names(partitions))
        revoked = self.group.left(partitions)
        self.commits.forget(revoked)
        self._settle(retry=False, final=False)  # the batch in flight: committed, or its rows back in self.batch
        if not revoked & self.batch.partitions():
            return
        if not self.outage.active:  # write what we hold for them now, so the next owner starts after it
            rows, offsets = list(self.batch.rows()), self.batch.offsets()
            try:
                self.progress.written(self._timed_write(rows))
            except ServiceUnavailable as exc:
                log.warning("could not write before the rebalance: %s", exc)
            else:
                self.commits.commit(offsets)
                self.batch.clear()
                return
        dropped = self.batch.drop(revoked)
        log.warning("dropped %d unwritten rows of revoked partitions (not committed: their next owner reads them)",
                    dropped)

    def _on_lost(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        log.warning("lost %s (session expired): their unwritten rows are dropped", names(partitions))
        lost = self.group.left(partitions)
        self._settle(retry=False, final=False)
        self.batch.drop(lost)
