"""An HBase outage as the sync worker lives it: a small state machine. Pure: the worker carries out its decisions
(pause the consumer, wait, log, count) and tells it how each write went.

    writing --write fails--> retrying --retries used up--> probing (at the longest backoff, until HBase is back)
       ^                        |                             |
       +---- a write succeeds --+-----------------------------+       stopping after the retries: give up
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from hbase_sync.backoff import Backoff


class Phase(enum.Enum):
    WRITING = "writing"  # no outage
    RETRYING = "retrying"  # writes fail: consumption paused, quick retries with growing delays
    PROBING = "probing"  # the quick retries are used up: still paused, one write per longest delay


@dataclass(frozen=True)
class Failure:
    """What to do after one failed write."""

    attempt: int  # failed writes in a row, this one included
    started: bool  # the outage starts now: pause consumption
    exhausted: bool  # the quick retries are used up now: report the worker as paused
    give_up: bool  # stopping and the quick retries are used up: drop the batch, uncommitted
    wait_s: float  # before the next attempt (0 when giving up)
    outage_s: float  # how long writes have been failing


@dataclass(frozen=True)
class Recovery:
    attempts: int  # writes it took, the successful one included
    outage_s: float


class Outage:
    def __init__(self, retries: int, backoff: Backoff) -> None:
        self.retries, self.backoff = retries, backoff
        self.failures = 0
        self.since = 0.0

    @property
    def phase(self) -> Phase:
        if self.failures == 0:
            return Phase.WRITING
        return Phase.RETRYING if self.failures <= self.retries else Phase.PROBING

    @property
    def active(self) -> bool:
        """Writes are failing: a rebalance must not try to write what the worker holds."""
        return self.failures > 0

    def failed(self, now: float, *, stopping: bool) -> Failure:
        self.failures += 1
        if self.failures == 1:
            self.since = now
        give_up = stopping and self.failures > self.retries
        return Failure(self.failures, self.failures == 1, self.failures == self.retries + 1, give_up,
                       0.0 if give_up else self.backoff.delay(self.failures), now - self.since)

    def succeeded(self, now: float) -> Recovery | None:
        """A write went through: the outage (if there was one) is over."""
        recovery = Recovery(self.failures + 1, now - self.since) if self.failures else None
        self.end()
        return recovery

    def end(self) -> None:
        """Back to writing without a successful write (given up, or nothing left to write)."""
        self.failures = 0
