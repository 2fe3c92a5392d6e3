"""What every request handler of one bridge shares (the app's ``state.bridge``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from iotcommon.days import ms_to_ts
from iotcommon.zones import SiteZones
from ws_bridge.auth import Tickets
from ws_bridge.config import BridgeConfig
from ws_bridge.history import HistorySource
from ws_bridge.hub import Hub, Session
from ws_bridge.lazy import Live
from ws_bridge.metrics import Metrics
from ws_bridge.queries import DAY_MS, Bounds


class LiveSource(Protocol):
    """Where live records come from (ws_bridge.live.LiveTails; a fake in protocol unit tests)."""

    @property
    def connected(self) -> bool: ...

    def start(self, deliver: Callable[[list[Live]], None],
              remember: Callable[[list[Live]], None] | None = None) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


@dataclass
class BridgeState:
    config: BridgeConfig
    hub: Hub
    history: HistorySource
    live: LiveSource
    metrics: Metrics
    replica: str
    zones: SiteZones
    origins: frozenset[str]
    tickets: Tickets
    bounds: Bounds
    sessions: set[Session] = field(default_factory=set)
    started: float = field(default_factory=time.time)

    def latest(self) -> dict[str, str]:
        """Newest event time seen live per stream (simulated time)."""
        return {stream: ms_to_ts(ms) for stream, ms in self.hub.latest_ms.items()}


def bounds_of(config: BridgeConfig) -> Bounds:
    return Bounds(sites=config.max_sites, limit=config.history_limit, range_ms=config.max_range_days * DAY_MS,
                  bytes=config.max_response_bytes, deadletter_scan=config.deadletter_scan)
