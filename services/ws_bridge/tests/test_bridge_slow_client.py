"""A slow or stuck client never slows the others: a real uvicorn server and real websocket clients over loopback.

The live source is a FAKE (records are handed to the hub by the test, as the Kafka tail would); the server, its
flow control, the per-client queues and the send timeout are real.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from typing import Any

from websockets.sync.client import connect

from ws_bridge.app import create_app
from ws_bridge.config import BridgeConfig


def test_a_stuck_client_is_dropped_and_closed_while_a_fast_one_gets_everything(msg: Any, fake_live: Any,
                                                                               fake_history: Any, serve_app: Any,
                                                                               stuck_client: Any) -> None:
    config = replace(BridgeConfig(port=0, heartbeat_s=3600.0), queue_records=2000, send_timeout_s=1.0)
    app = create_app(config, history=fake_history, live=fake_live)
    port = serve_app(app, config)
    state = app.state.bridge
    stuck = stuck_client(port, {"type": "subscribe", "id": "s", "stream": "raw"})
    deadline = time.monotonic() + 30
    while state.hub.subscription_count < 1:
        assert time.monotonic() < deadline, "the stuck client's subscription never arrived"
        time.sleep(0.05)
    fast = connect(f"ws://127.0.0.1:{port}/ws")
    fast.recv(10)
    fast.send(json.dumps({"type": "subscribe", "id": "f", "stream": "raw"}))
    assert json.loads(fast.recv(10))["type"] == "subscribed"

    got: list[int] = []
    rounds, per_round = 300, 200  # ~10 MB: more than the socket buffers between the server and the stuck client
    for r in range(rounds):  # lockstep: the fast client must receive each batch before the next is sent
        fake_live.push("raw", *[msg.reading("HVAC1", value=float(i), seq=r * per_round + i)
                                for i in range(per_round)])
        frame = json.loads(fast.recv(30))
        assert frame["type"] == "data", frame
        got.extend(rec["data"]["seq"] for rec in frame["records"])
    assert got == list(range(rounds * per_round))  # everything, in order, nothing dropped

    deadline = time.monotonic() + 60
    while len(state.sessions) > 1:  # the stuck one is closed by the send timeout
        assert time.monotonic() < deadline, "the stuck client was never closed"
        time.sleep(0.1)
    assert state.metrics.slow_clients_closed._value.get() == 1
    assert state.metrics.records_dropped._value.get() > 0  # its queue overflowed before it was closed
    stuck.close()
    fast.close()
