"""A daemon thread that runs a loop until asked to stop: the benches' followers and probers."""

from __future__ import annotations

import threading


class Background:
    """Subclasses implement `_run`, which returns once `self._stop` is set."""

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        raise NotImplementedError
