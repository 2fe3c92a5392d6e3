"""N websocket clients of the bridge, each subscribed to the raw readings of one site (as a dashboard is), in an
asyncio loop of their own thread. For every reading received: seconds from its due time (the plan) to arrival."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import threading
import time
from dataclasses import dataclass, field

import ws_clients

from e2e.schedule import Plan, site_name


@dataclass
class ClientLog:
    frames: int = 0
    records: int = 0
    latency_s: dict[int, float] = field(default_factory=dict)  # reading index -> seconds from due to arrival
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


class Clients:
    def __init__(self, url: str, count: int, plan: Plan, start_wall: float) -> None:
        self.url, self.count, self.plan, self.start_wall = url, count, plan, start_wall
        self.log = ClientLog()
        self.ready = threading.Event()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ws-clients", daemon=True)
        self._tasks: list[concurrent.futures.Future[None]] = []

    def start(self, timeout: float = 120.0) -> None:
        self._thread.start()
        subscribed = [threading.Event() for _ in range(self.count)]
        self._tasks = [asyncio.run_coroutine_threadsafe(self._client(n, subscribed[n]), self._loop)
                       for n in range(self.count)]
        deadline = time.monotonic() + timeout
        for event in subscribed:
            if not event.wait(max(0.0, deadline - time.monotonic())):
                raise SystemExit(f"websocket clients did not subscribe within {timeout:.0f} s: {self.log.errors}")

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(asyncio.sleep(0.1), self._loop).result(30)  # cancellations run
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    async def _client(self, n: int, subscribed: threading.Event) -> None:
        site = site_name(n % self.plan.sites)
        try:
            async with ws_clients.subscribed(self.url, "raw", "raw", [site]) as ws:
                subscribed.set()
                async for frame in ws:
                    now = time.time()
                    message = json.loads(frame)
                    if message.get("type") != "data":
                        continue
                    self.log.frames += 1
                    for record in message["records"]:
                        data = record["data"]
                        i = self.plan.index_of(data["site"], data["sensor"], data["seq"])
                        self.log.records += 1
                        if i in self.log.latency_s:
                            self.log.duplicates += 1
                        else:
                            self.log.latency_s[i] = now - self.start_wall - self.plan.due_s(i)
        except Exception as exc:
            self.log.errors.append(f"client {n}: {exc!r}")
