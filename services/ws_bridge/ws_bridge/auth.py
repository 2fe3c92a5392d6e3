"""Bearer-token check shared by the websocket and HTTP APIs (pure)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """``Authorization: Bearer <token>``, or ``?access_token=<token>`` (browsers cannot set websocket headers)."""
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return query.get("access_token") or None


def allowed(expected: str, required: bool, presented: str | None) -> bool:
    if not required:
        return True
    if not expected or presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())
