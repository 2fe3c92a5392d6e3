"""Pure: which browser origins may open the websocket (a cross-site page must not read the pipeline's data).

A browser sends ``Origin: <scheme>://<host>[:<port>]`` on every websocket handshake. The bridge accepts:

- no ``Origin`` header at all (non-browser clients: they are not a cross-site page);
- its own origin: the Origin's host and port equal the request's ``Host`` header;
- an origin of ``IOTPIPE_BRIDGE_ALLOWED_ORIGINS`` (comma-separated), or any origin when that list holds ``*``.

Origins are compared normalised: lower case, default ports (80 for http, 443 for https) left out.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from iotcommon.errors import ConfigError

ANY = "*"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise(origin: str) -> str | None:
    """``scheme://host[:port]`` in canonical form, or None when ``origin`` is not a web origin (e.g. ``null``)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None or parts.password is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def parse_allowed_origins(text: str) -> frozenset[str]:
    """``"https://a.example, http://b:8080"`` -> normalised origins; ``*`` stays ``*``. ConfigError names a bad one."""
    out: set[str] = set()
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        if item == ANY:
            out.add(ANY)
            continue
        origin = normalise(item)
        if origin is None:
            msg = (f"IOTPIPE_BRIDGE_ALLOWED_ORIGINS: {item!r} is not an origin "
                   "(scheme://host[:port] with http or https, no path), nor *")
            raise ConfigError(msg)
        out.add(origin)
    return frozenset(out)


def _own(origin: str, host_header: str) -> bool:
    """Whether ``origin`` (normalised) names the host and port the request was sent to."""
    scheme, _, netloc = origin.partition("://")
    target = normalise(f"{scheme}://{host_header.strip()}")
    return target is not None and target.partition("://")[2] == netloc


def origin_allowed(origin: str | None, host_header: str | None, allowed: frozenset[str]) -> bool:
    """The handshake rule above."""
    if origin is None:
        return True
    if ANY in allowed:
        return True
    normal = normalise(origin)
    if normal is None:
        return False
    if normal in allowed:
        return True
    return host_header is not None and _own(normal, host_header)
