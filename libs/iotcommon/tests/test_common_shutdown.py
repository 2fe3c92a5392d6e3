"""iotcommon.shutdown: SIGTERM and SIGINT set the stop event, after the announcement (real signals to this process)."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest

from iotcommon.shutdown import stop_on_signals


@pytest.fixture
def handlers_restored() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_is_announced_and_sets_the_event(sig: signal.Signals, handlers_restored: None) -> None:
    heard: list[str] = []
    stop = stop_on_signals(heard.append)
    assert not stop.is_set()
    os.kill(os.getpid(), sig)  # the handler runs in the main thread before kill returns to Python code
    assert stop.wait(10)
    assert heard == [sig.name]
