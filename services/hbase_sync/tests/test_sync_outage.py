"""The outage state machine alone (pure: no consumer, no store, times given by the test)."""

from __future__ import annotations

from hbase_sync.backoff import Backoff
from hbase_sync.outage import Failure, Outage, Phase, Recovery

NO_JITTER = Backoff(0.1, 1.0, jitter=0.0)  # delays 0.1, 0.2, 0.4, 0.8, then 1.0 s


def test_writing_until_a_write_fails() -> None:
    outage = Outage(3, NO_JITTER)
    assert (outage.phase, outage.active) == (Phase.WRITING, False)
    assert outage.succeeded(5.0) is None  # a write without an outage recovers nothing
    assert outage.failed(10.0, stopping=False) == Failure(attempt=1, started=True, exhausted=False, give_up=False,
                                                          wait_s=0.1, outage_s=0.0)
    assert (outage.phase, outage.active) == (Phase.RETRYING, True)


def test_the_quick_retries_back_off_then_it_probes_at_the_longest_delay() -> None:
    outage = Outage(3, NO_JITTER)
    failures = [outage.failed(100.0 + i, stopping=False) for i in range(6)]
    assert [f.wait_s for f in failures] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert [f.started for f in failures] == [True, False, False, False, False, False]
    assert [f.exhausted for f in failures] == [False, False, False, True, False, False]  # said once, on retry 3
    assert [f.outage_s for f in failures] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert not any(f.give_up for f in failures)  # not stopping: it waits for HBase as long as it takes
    assert outage.phase is Phase.PROBING


def test_a_successful_write_ends_the_outage_and_says_how_long_it_took() -> None:
    outage = Outage(3, NO_JITTER)
    for now in (20.0, 21.0, 23.0):
        outage.failed(now, stopping=False)
    assert outage.succeeded(27.5) == Recovery(attempts=4, outage_s=7.5)
    assert (outage.phase, outage.active) == (Phase.WRITING, False)
    assert outage.failed(40.0, stopping=False).started  # the next outage starts afresh
    assert outage.failed(41.0, stopping=False).outage_s == 1.0


def test_stopping_gives_up_only_after_the_quick_retries() -> None:
    outage = Outage(2, NO_JITTER)
    decisions = [outage.failed(float(i), stopping=True) for i in range(3)]
    assert [d.give_up for d in decisions] == [False, False, True]  # the write, 2 retries, then give up
    assert decisions[-1].wait_s == 0.0
    outage.end()
    assert (outage.phase, outage.active) == (Phase.WRITING, False)


def test_without_quick_retries_the_first_failure_already_probes() -> None:
    outage = Outage(0, NO_JITTER)
    first = outage.failed(1.0, stopping=False)
    assert (first.started, first.exhausted, outage.phase) == (True, True, Phase.PROBING)
