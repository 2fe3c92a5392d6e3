"""Pure: a bounded window of the record identities seen last (the de-duplication of the uncommitted live path).

The stream job writes ``.raw`` in Kafka transactions. A consumer with ``read_uncommitted`` sees a reading as soon as
the job has sent it, also when the transaction is later aborted (the job failed before its checkpoint); the job then
restores the checkpoint and sends the same readings again (same site, sensor, ts and seq: the same identity). The
window drops the second copy, so a client sees each reading once.
"""

from __future__ import annotations

from collections import deque


class RecentIdents:
    """The last ``capacity`` identities seen. ``first_time(ident)`` is True for an identity not in the window.

    Identities are kept as Python string hashes (64 bits, per process), not as strings: 200,000 take ~20 MB.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._capacity = capacity
        self._order: deque[int] = deque()
        self._seen: set[int] = set()

    def __len__(self) -> int:
        return len(self._seen)

    def first_time(self, ident: str) -> bool:
        key = hash(ident)
        if key in self._seen:
            return False
        self._seen.add(key)
        self._order.append(key)
        if len(self._order) > self._capacity:
            self._seen.discard(self._order.popleft())
        return True
