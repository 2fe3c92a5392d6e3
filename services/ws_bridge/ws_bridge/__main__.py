"""``python -m ws_bridge``: run the bridge under uvicorn."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence

from iotcommon import logs
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
    logs.setup(config.log_level, config.log_format)
    log = logging.getLogger("ws_bridge")
    log.info("starting: %s", describe(config))
    log.info("dashboard at http://%s:%d/ (websocket /ws, HTTP API /api/v1/...)",
             "127.0.0.1" if config.host in ("0.0.0.0", "") else config.host, config.port)

    from ws_bridge.app import create_app
    from ws_bridge.server import Server, uvicorn_config

    server = Server(uvicorn_config(create_app(config), config))
    # SIGINT/SIGTERM: stop accepting, close the websockets (1001), run the lifespan shutdown (stops the Kafka tail).
    server.run()
    log.info("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
