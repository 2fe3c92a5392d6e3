"""The local bridge's address, for process supervisors (the local stack's pipeline registry; its readiness probe
is iotpipe_stack.probes.http_ready on /healthz)."""

from __future__ import annotations

import os
from collections.abc import Mapping

DEFAULT_PORT = 8765


def local_port(environ: Mapping[str, str] | None = None) -> int:
    """The port the local pipeline's bridge binds: IOTPIPE_BRIDGE_PORT, default 8765."""
    env = os.environ if environ is None else environ
    return int(env.get("IOTPIPE_BRIDGE_PORT", str(DEFAULT_PORT)))


def dashboard_url(environ: Mapping[str, str] | None = None) -> str:
    return f"http://127.0.0.1:{local_port(environ)}/"

