"""The benches' websocket clients of the bridge connect and subscribe one way: here (asyncio; websockets)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


@contextlib.asynccontextmanager
async def subscribed(url: str, stream: str, sub_id: str,
                     sites: list[str] | None = None) -> AsyncIterator[ClientConnection]:
    """A connection past the bridge's hello frame and its answer to one subscribe request (docs/bridge-protocol.md).

    No frame size or queue limit and no pings: a busy bench measures the bridge, not its client's limits."""
    request: dict[str, Any] = {"type": "subscribe", "id": sub_id, "stream": stream}
    if sites is not None:
        request["sites"] = sites
    async with websockets.connect(url, max_size=None, max_queue=None, ping_interval=None) as ws:
        await ws.recv()  # hello
        await ws.send(json.dumps(request))
        await ws.recv()  # subscribed
        yield ws
