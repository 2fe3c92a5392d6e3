"""Loopback port helpers: is a port free, pick free ports."""

from __future__ import annotations

import socket
from collections.abc import Iterable

from iotcommon.errors import StackError
from iotpipe_stack.settings import LOOPBACK


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """True if nothing listens on host:port and we could bind it now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def is_listening(port: int, host: str = LOOPBACK, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """`count` distinct ports the kernel considers free right now (bound together, then released)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def check_ports_free(wanted: Iterable[tuple[str, int]], host: str = LOOPBACK) -> None:
    """Raise StackError naming every (what, port) already taken."""
    taken = [f"{what} port {port}" for what, port in wanted if not is_port_free(port, host)]
    if taken:
        raise StackError(
            f"port already in use on {host}: {', '.join(taken)}. Stop whatever uses it, or pick other ports "
            "(IOTPIPE_*_PORT env vars or --*-port flags)."
        )
