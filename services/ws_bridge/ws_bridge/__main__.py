"""``python -m ws_bridge``: run the bridge under uvicorn."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from iotcommon.config import describe, load
from iotcommon.errors import ConfigError
from ws_bridge.config import DESCRIPTION, BridgeConfig


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load(BridgeConfig, sys.argv[1:] if argv is None else argv, os.environ, prog="python -m ws_bridge",
                      description=DESCRIPTION).check()
    except ConfigError as exc:
        print(f"ws_bridge: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=config.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log = logging.getLogger("ws_bridge")
    log.info("starting: %s", describe(config))
    log.info("dashboard at http://%s:%d/ (websocket /ws, HTTP API /api/v1/...)",
             "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host, config.port)

    import uvicorn

    from ws_bridge.app import create_app

    class Server(uvicorn.Server):
        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            """SIGTERM/SIGINT: graceful shutdown, then exit 0 (uvicorn would re-raise the signal: exit 143)."""
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True

    app = create_app(config)
    server = Server(uvicorn.Config(
        app, host=config.host, port=config.port, log_level=config.log_level.lower(), access_log=False,
        ws="websockets-sansio", ws_ping_interval=config.heartbeat_s, ws_ping_timeout=config.heartbeat_s * 3,
        ws_max_size=1 << 20, lifespan="on", timeout_graceful_shutdown=5,
    ))
    # SIGINT/SIGTERM: stop accepting, close the websockets (1001), run the lifespan shutdown (stops the Kafka tail).
    server.run()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
