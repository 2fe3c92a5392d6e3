"""``python -m ws_bridge``: run the bridge under uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

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

    app = create_app(config)
    server = uvicorn.Server(uvicorn.Config(
        app, host=config.host, port=config.port, log_level=config.log_level.lower(), access_log=False,
        ws="websockets-sansio", ws_ping_interval=config.heartbeat_s, ws_ping_timeout=config.heartbeat_s * 3,
        ws_max_size=1 << 20, lifespan="on", timeout_graceful_shutdown=5,
    ))
    # uvicorn handles SIGINT/SIGTERM: stops accepting, closes connections, runs the lifespan shutdown.
    server.run()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
