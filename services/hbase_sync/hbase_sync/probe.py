"""Readiness probe for process supervisors (the local stack's pipeline registry): GET /readyz answers 200."""

from __future__ import annotations

import urllib.error
import urllib.request


def http_ready(url: str, timeout: float = 2.0) -> bool:
    if not url.startswith(("http://", "https://")):
        msg = f"not an http(s) URL: {url!r}"
        raise ValueError(msg)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
