"""Graceful stop: SIGTERM and SIGINT set one event that a process's main loop watches (standard library only)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType


def stop_on_signals(announce: Callable[[str], None] = lambda name: None) -> threading.Event:
    """An event that SIGTERM or SIGINT sets; ``announce(<signal name>)`` runs first (a log line saying what stopping
    means for this process). Call it from the main thread, as Python's signal handlers are installed there."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        announce(signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop
