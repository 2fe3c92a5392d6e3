"""The consumer-group join watchdog: notices a consumer that never gets into its group. Pure: the worker tells it
what happened (subscribed, partitions assigned or revoked) with the time, and asks it whether the wait is over.

A worker is *in the group* from its first assignment callback on, even one with no partitions (more replicas than
partitions). It is *waiting* after it subscribed, and again after a revocation or a loss that left it holding nothing
(an eager rebalance revokes everything, then assigns again). A wait longer than ``timeout_s`` is overdue: the worker
then recreates its consumer (seen on the local cluster: a consumer stuck in consume() with its group Dead, no member,
0 partitions, until the pod was deleted). ``timeout_s`` 0 turns the watchdog off.

Each replacement doubles the time the next consumer is given (up to ``MAX_WAIT_S``), until one is let in: a broker too
busy to answer a JoinGroup in time is not helped by a new consumer every ``timeout_s``, whose join starts again.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_WAIT_S = 900.0


@dataclass
class JoinWatch:
    timeout_s: float
    waiting_since: float | None = None  # None: in the group (or not subscribed yet)
    replaced: int = 0  # consumers replaced since the last one that got in

    @property
    def limit_s(self) -> float:
        """How long the current consumer may wait: the timeout, doubled for each replacement in a row."""
        return min(self.timeout_s * (1 << self.replaced), max(MAX_WAIT_S, self.timeout_s))

    def subscribed(self, now: float) -> None:
        """A consumer subscribed: waiting for its first assignment."""
        self.waiting_since = now

    def replacing(self, now: float) -> None:
        """The waiting consumer is replaced by a new one, which gets twice as long."""
        self.replaced += 1
        self.waiting_since = now

    def assigned(self) -> None:
        """An assignment callback, with or without partitions: the consumer is in the group."""
        self.waiting_since = None
        self.replaced = 0

    def revoked(self, now: float, still_held: int) -> None:
        """Partitions revoked or lost; ``still_held`` partitions remain. Holding nothing, it waits to be let back in."""
        if still_held == 0 and self.waiting_since is None:
            self.waiting_since = now

    def overdue(self, now: float) -> float | None:
        """Seconds waited, once the wait is longer than the limit; None while in the group or within the time."""
        if self.timeout_s <= 0 or self.waiting_since is None:
            return None
        waited = now - self.waiting_since
        return waited if waited >= self.limit_s else None
