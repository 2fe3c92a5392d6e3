"""Bearer tokens and websocket tickets (pure apart from the clock and the random source).

- HTTP API: ``Authorization: Bearer <token>``, or ``?access_token=<token>`` for clients that cannot set headers (the
  URL then ends up in access logs: a trade-off documented in docs/bridge-protocol.md).
- Websocket: ``Authorization: Bearer <token>`` (non-browser clients), or ``/ws?ticket=<ticket>``: a single-use ticket
  that lives ``ttl_s`` seconds, from ``POST /api/v1/ws-ticket`` (browsers cannot set headers on a websocket, and the
  long-lived token must not travel in a URL).

A ticket is ``<expiry>.<nonce>.<signature>``: the signature is an HMAC of expiry and nonce keyed by the bearer token,
so every replica that shares the token accepts tickets issued by the others; each replica remembers the tickets it
has accepted until they expire, so a ticket opens at most one connection per replica.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header."""
    header = headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """HTTP API: the bearer header, else ``?access_token=``."""
    return bearer_token(headers) or query.get("access_token") or None


def allowed(expected: str, required: bool, presented: str | None) -> bool:
    if not required:
        return True
    if not expected or presented is None:
        return False
    return hmac.compare_digest(expected.encode(), presented.encode())


class Tickets:
    """Issues and redeems single-use websocket tickets."""

    def __init__(self, token: str, ttl_s: int, *, clock: Callable[[], float] = time.time) -> None:
        seed = token.encode() if token else secrets.token_bytes(32)  # no token: tickets of this process only
        self._key = hashlib.sha256(b"iotpipe-ws-ticket\x00" + seed).digest()
        self.ttl_s = ttl_s
        self._clock = clock
        self._used: dict[str, int] = {}  # nonce -> expiry, until it expires

    def _sign(self, expiry: int, nonce: str) -> str:
        return hmac.new(self._key, f"{expiry}.{nonce}".encode(), hashlib.sha256).hexdigest()

    def issue(self) -> str:
        expiry = int(self._clock()) + self.ttl_s
        nonce = secrets.token_urlsafe(18)
        return f"{expiry}.{nonce}.{self._sign(expiry, nonce)}"

    def redeem(self, ticket: str) -> bool:
        """True once for a genuine, unexpired ticket; False for anything else (and on every later try)."""
        now = int(self._clock())
        for nonce, expiry in list(self._used.items()):
            if expiry < now:
                del self._used[nonce]
        parts = ticket.split(".")
        if len(parts) != 3 or not parts[0].isascii() or not parts[0].isdigit() or len(parts[0]) > 12:
            return False
        expiry, nonce, signature = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(self._sign(expiry, nonce).encode(), signature.encode("utf-8", "replace")):
            return False
        if expiry < now or expiry > now + self.ttl_s or nonce in self._used:
            return False
        self._used[nonce] = expiry
        return True
