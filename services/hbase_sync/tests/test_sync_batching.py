"""Batching policy (write when the writer is free; size and time bounds), per-partition offsets, and retry backoff.
Pure logic, no services."""

from __future__ import annotations

import random

from hbase_sync.backoff import Backoff
from hbase_sync.batching import Batch, BatchPolicy
from hbase_sync.mapping import Row

POLICY = BatchPolicy(max_rows=3, max_wait_s=0.5)


def row(n: int) -> Row:
    return Row("raw", f"k{n}".encode(), {b"d:m": b"x"})


def test_a_batch_is_due_when_the_writer_caught_up_when_full_or_when_its_oldest_row_waited_long_enough() -> None:
    assert not POLICY.due(0, None, 100.0, caught_up=True)  # nothing to write
    assert POLICY.due(1, 100.0, 100.0, caught_up=True)  # writer free, nothing more fetched: write now
    assert not POLICY.due(2, 100.0, 100.4, caught_up=False)  # the writer is busy: keep filling
    assert POLICY.due(2, 100.0, 100.5, caught_up=False)
    assert POLICY.due(3, 100.0, 100.0, caught_up=False)


def test_an_empty_batch_waits_for_its_first_record_alone() -> None:
    # consume(n, timeout) returns only with n records or at the timeout: asking for more would hold the first one
    assert POLICY.poll(0, None, 100.0, idle_s=0.5, writer_free=True) == (1, 0.5)
    assert POLICY.poll(0, None, 100.0, idle_s=0.5, writer_free=False) == (1, 0.5)


def test_a_free_writer_takes_what_is_queued_without_waiting() -> None:
    assert POLICY.poll(1, 100.0, 100.0, idle_s=0.5, writer_free=True) == (2, 0.0)
    assert POLICY.poll(5, 100.0, 100.0, idle_s=0.5, writer_free=True) == (1, 0.0)  # over the bound: still polls


def test_a_busy_writer_is_polled_for_briefly_and_never_past_the_batch_age_bound() -> None:
    wanted, timeout = POLICY.poll(1, 100.0, 100.2, idle_s=0.5, writer_free=False)
    assert wanted == 2 and 0.0 < timeout <= 0.3
    assert POLICY.poll(1, 100.0, 100.49, idle_s=0.5, writer_free=False)[1] <= 0.01 + 1e-9
    assert POLICY.poll(1, 100.0, 101.0, idle_s=0.5, writer_free=False) == (2, 0.0)


def test_a_batch_commits_the_offset_after_the_last_row_of_each_partition() -> None:
    batch = Batch()
    for topic, part, off in [("a", 0, 5), ("a", 0, 6), ("a", 1, 0), ("b", 0, 41)]:
        batch.add(topic, part, off, row(off), now=1.0)
    assert batch.size == 4
    assert batch.oldest_at == 1.0
    assert batch.offsets() == {("a", 0): 7, ("a", 1): 1, ("b", 0): 42}


def test_dropping_revoked_partitions_forgets_their_rows_and_offsets() -> None:
    batch = Batch()
    for part, off in [(0, 1), (0, 2), (1, 7)]:
        batch.add("a", part, off, row(off), now=2.0)
    assert batch.drop([("a", 0), ("z", 9)]) == 2
    assert batch.offsets() == {("a", 1): 8}
    assert [r.key for r in batch.rows()] == [b"k7"]
    assert batch.drop([("a", 1)]) == 1
    assert batch.size == 0
    assert batch.oldest_at is None


def test_backoff_doubles_from_the_first_delay_up_to_the_cap() -> None:
    backoff = Backoff(0.2, 5.0, jitter=0.0)
    assert [backoff.delay(n) for n in range(1, 8)] == [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0]
    assert backoff.delay(10_000) == 5.0


def test_backoff_jitter_stays_within_its_band_and_under_the_cap() -> None:
    backoff = Backoff(1.0, 3.0, jitter=0.2, rng=random.Random(7))
    firsts = [backoff.delay(1) for _ in range(200)]
    assert all(0.8 <= d <= 1.2 for d in firsts)
    assert len(set(firsts)) > 1
    assert all(2.4 <= backoff.delay(9) <= 3.0 for _ in range(200))


def test_the_committed_offset_skips_transaction_markers_when_the_consumer_is_past_them() -> None:
    batch = Batch()
    batch.add("a", 0, 4, row(4), now=1.0)
    batch.add("a", 1, 9, row(9), now=1.0)
    batch.stamp({("a", 0): 6, ("a", 1): 3, ("b", 0): 50})  # a[1]: behind the batch (stale), b[0]: not in the batch
    assert batch.offsets() == {("a", 0): 6, ("a", 1): 10}

