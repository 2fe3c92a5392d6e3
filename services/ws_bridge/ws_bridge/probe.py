"""Readiness probe and address for process supervisors (the local stack's pipeline registry)."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from collections.abc import Mapping

DEFAULT_PORT = 8765


def local_port(environ: Mapping[str, str] | None = None) -> int:
    """The port the local pipeline's bridge binds: IOTPIPE_BRIDGE_PORT, default 8765."""
    env = os.environ if environ is None else environ
    return int(env.get("IOTPIPE_BRIDGE_PORT", str(DEFAULT_PORT)))


def dashboard_url(environ: Mapping[str, str] | None = None) -> str:
    return f"http://127.0.0.1:{local_port(environ)}/"


def healthy(base_url: str, timeout: float = 2.0) -> bool:
    """GET <base_url>healthz answers 200."""
    if not base_url.startswith(("http://", "https://")):
        msg = f"not an http(s) URL: {base_url!r}"
        raise ValueError(msg)
    try:
        with urllib.request.urlopen(base_url.rstrip("/") + "/healthz", timeout=timeout) as response:  # noqa: S310
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
