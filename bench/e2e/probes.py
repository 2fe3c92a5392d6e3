"""Which sampled readings the HBase prober looks up, and when (pure: the lookup is passed in).

The first prober looked up every pending sample every 100 ms. When the pipeline fell behind (reading -> HBase 15 s
at 30,000 readings/s), that was ~3,000 gets a second, 15 % of HBase's CPU in a flight recording: the bench loaded
HBase more the further behind it fell. Now only the oldest pending sample of each site is looked up, and the next one
of the site right after it is found, so the lookups stay at about (sites + samples found) per poll, whatever the lag.

Why this measures the same thing: a site's readings share one Kafka key, so they stay in order through the stream
job's `.raw` partition and the sync worker, which writes a partition's records in offset order. A later reading of a
site is never readable long before an earlier one: at most one write batch apart (its shards go out in parallel), and
then both are found in the same poll. A reading found late because of it only ever counts as slower, never faster."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable
from dataclasses import dataclass, field


@dataclass
class HeadProbes:
    """Pending samples in one queue per ordering group (a site), looked up head first."""

    give_up_s: float
    queues: dict[Hashable, deque[tuple[bytes, int, float]]] = field(default_factory=dict)  # key, index, due
    missing: int = 0

    def add(self, group: Hashable, key: bytes, index: int, due: float) -> None:
        self.queues.setdefault(group, deque()).append((key, index, due))

    def poll(self, lookup: Callable[[Iterable[bytes]], Collection[bytes]],
             now: Callable[[], float]) -> dict[int, float]:
        """Looks up each group's oldest pending sample, then the next one of each group whose head was found, until a
        round finds nothing. Returns index -> seconds from due to found. A head still missing `give_up_s` after its
        due time is dropped (counted in `missing`) so that its group goes on."""
        found: dict[int, float] = {}
        heads = [g for g, q in self.queues.items() if q]
        while heads:
            present = lookup([self.queues[g][0][0] for g in heads])
            seen = now()
            advanced = []
            for group in heads:
                queue = self.queues[group]
                key, index, due = queue[0]
                if key in present:
                    found[index] = seen - due
                elif seen - due > self.give_up_s:
                    self.missing += 1
                else:
                    continue
                queue.popleft()
                if queue:
                    advanced.append(group)
            heads = advanced
        return found
