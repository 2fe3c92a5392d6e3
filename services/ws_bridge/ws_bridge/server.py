"""The uvicorn settings the bridge runs with (used by ``python -m ws_bridge`` and by the tests that serve it)."""

from __future__ import annotations

import signal
from types import FrameType
from typing import Any

import uvicorn

from ws_bridge.config import BridgeConfig

MAX_FRAME_BYTES = 1 << 20  # a bigger client frame is refused by the websocket layer with close code 1009
MAX_REQUEST_HEAD_BYTES = 64 * 1024  # a bigger request line + headers is refused with 400 by the HTTP layer


class Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: graceful shutdown, then exit 0 (uvicorn would re-raise the signal: exit 143)."""
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        self.should_exit = True


def uvicorn_config(app: Any, config: BridgeConfig) -> uvicorn.Config:
    return uvicorn.Config(
        app, host=config.host, port=config.port, log_level=config.log_level.lower(), access_log=False,
        ws="websockets-sansio", ws_ping_interval=config.heartbeat_s, ws_ping_timeout=config.heartbeat_s * 3,
        ws_max_size=MAX_FRAME_BYTES, lifespan="on", timeout_graceful_shutdown=5,
        # h11 (not httptools, which buffers any URL length): request line + headers are bounded, so a query string
        # cannot grow without limit before the bridge sees it
        http="h11", h11_max_incomplete_event_size=MAX_REQUEST_HEAD_BYTES,
    )
