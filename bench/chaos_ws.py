"""A websocket client of the bridge for the chaos run: follows every aggregate (history, then live) and reconnects
with history whenever the connection drops (e.g. the bridge was killed). Keeps the highest revision per key."""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any

from background import Background
from chaos_expected import AggKey
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect


class AggregateFollower(Background):
    def __init__(self, url: str, sites: list[str], history_per_series: int) -> None:
        super().__init__("ws-follower")
        self.url = url
        self.sites = sites
        self.history_per_series = history_per_series
        self.connects = 0
        self._latest: dict[AggKey, tuple[int, float, int]] = {}  # key -> (revision, value, count)
        self._lock = threading.Lock()

    def aggregates(self) -> dict[AggKey, tuple[float, int]]:
        with self._lock:
            return {k: (v, c) for k, (_, v, c) in self._latest.items()}

    def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(OSError, WebSocketException, TimeoutError):  # the bridge is away: again
                self._session()
            self._stop.wait(0.5)

    def _session(self) -> None:
        with connect(self.url, open_timeout=10, max_size=None) as ws:
            self.connects += 1
            ws.send(json.dumps({"type": "subscribe", "id": "agg", "stream": "aggregates", "sites": self.sites,
                                "last": self.history_per_series}))
            while not self._stop.is_set():
                try:
                    frame = ws.recv(timeout=1.0)
                except TimeoutError:
                    continue
                msg = json.loads(frame)
                if msg.get("type") == "data":
                    self._take(msg["records"])

    def _take(self, records: list[dict[str, Any]]) -> None:
        with self._lock:
            for item in records:
                a = item["data"]
                key = (a["site"], a["name"], a["day"])
                old = self._latest.get(key)
                if old is None or a["revision"] >= old[0]:
                    self._latest[key] = (a["revision"], float(a["value"]), int(a["count"]))
