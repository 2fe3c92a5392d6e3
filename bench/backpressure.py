"""Backpressure helpers shared by the benches: a bench waits for the producer's queue, it never dies on it.

``produce`` retries a message until the local queue has room (serving delivery callbacks meanwhile);
``flush`` waits until every message is acknowledged, as long as the count keeps going down.
"""

from __future__ import annotations

import time
from typing import Any

POLL_S = 0.05


def produce(producer: Any, topic: str, value: bytes | None, key: bytes | str | None = None) -> None:
    """``producer.produce``, polling until the local queue has room (``BufferError``: queue full)."""
    while True:
        try:
            producer.produce(topic, value, key)
            return
        except BufferError:
            producer.poll(POLL_S)


def flush(producer: Any, what: str, stall_s: float = 120.0) -> None:
    """Flush until nothing is left; SystemExit only when nothing was acknowledged for ``stall_s`` seconds."""
    left = len(producer)
    last_progress = time.monotonic()
    while left:
        now_left = producer.flush(5)
        if now_left < left:
            last_progress = time.monotonic()
        elif time.monotonic() - last_progress > stall_s:
            raise SystemExit(f"{what}: {now_left} messages not acknowledged, no progress for {stall_s:.0f} s")
        left = now_left
