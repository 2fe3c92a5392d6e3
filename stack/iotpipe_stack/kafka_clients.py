"""The confluent-kafka clients (librdkafka handles) still alive in this process: the test session's leak check.

A client that outlives the test that made it keeps its librdkafka threads running through every later broker stop
and restart of the session (the Kafka fixture is session-scoped), and it is destroyed whenever its last reference
goes: at a failed test's traceback's end, or, inside a reference cycle, by the garbage collector at any moment and in
any thread (a client destroyed inside one of librdkafka's callbacks can crash the process:
confluentinc/confluent-kafka-python#1761). Tests close every client they make (``with Producer(...) as p:``).
Standard library only; nothing is imported that the process has not imported already.
"""

from __future__ import annotations

import ctypes
import gc
import sys
import types

#: the client classes of confluent_kafka's C extension (AdminClient derives from _AdminClientImpl)
_CLIENT_CLASSES = ("Producer", "Consumer", "_AdminClientImpl")


def live_clients() -> list[object]:
    """Every confluent-kafka client object alive now (closed or not), including those only a garbage cycle holds."""
    cimpl = sys.modules.get("confluent_kafka.cimpl")
    if cimpl is None:
        return []
    kinds = tuple(getattr(cimpl, name) for name in _CLIENT_CLASSES if hasattr(cimpl, name))
    return [obj for obj in gc.get_objects() if issubclass(type(obj), kinds)]  # type(): a weak proxy never raises


def is_open(client: object) -> bool:
    """Whether the client's librdkafka handle still exists (a closed one, or one a ``with`` block ended, is harmless).
    Reads the first field of the extension's object after the object header, its ``rd_kafka_t *rk``, which close()
    sets to NULL (confluent_kafka's Handle struct; tests/test_stack_kafka_clients.py checks it for this version)."""
    return ctypes.c_void_p.from_address(id(client) + object.__basicsize__).value is not None


def open_clients() -> list[object]:
    """The clients alive now whose librdkafka handle is not destroyed yet."""
    return [client for client in live_clients() if is_open(client)]


def _holder(referrer: object) -> str:
    if isinstance(referrer, types.FrameType):
        return f"frame of {referrer.f_code.co_name}() ({referrer.f_code.co_filename}:{referrer.f_lineno})"
    if isinstance(referrer, dict):
        owners = [type(o).__qualname__ for o in gc.get_referrers(referrer) if getattr(o, "__dict__", None) is referrer]
        return f"attributes of a {owners[0]}" if owners else f"a dict with keys {sorted(map(str, referrer))[:6]}"
    if isinstance(referrer, types.CellType):
        return "a closure's variable"
    return f"a {type(referrer).__qualname__}"


def describe(clients: list[object]) -> str:
    """One line per client: its class and what refers to it (``clients`` itself left out)."""
    lines = []
    for client in clients:
        holders = [_holder(r) for r in gc.get_referrers(client) if r is not clients]
        held = ", ".join(holders) or "nothing Python can see (a running call in some thread, or C code)"
        lines.append(f"{type(client).__name__} held by {held}")
    return "\n".join(lines)
