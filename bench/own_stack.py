"""A local stack of a bench's own: temporary home, free loopback ports, stopped at the end (also if the bench dies:
die_with_parent)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from iotpipe_stack.ports import free_ports
from iotpipe_stack.settings import StackSettings, resolve
from iotpipe_stack.stack import LocalStack


@contextmanager
def own_stack(prefix: str, components: list[str]) -> Iterator[StackSettings]:
    """Starts `components` (of kafka, hbase, thrift) in a new temporary home and yields its settings."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        kafka, controller, zk, thrift = free_ports(4)
        environ = {k: v for k, v in os.environ.items() if k in ("IOTPIPE_CACHE",)}
        settings = resolve(environ, {"home": home}).replace(kafka_port=kafka, kafka_controller_port=controller,
                                                            zk_port=zk, thrift_port=thrift)
        stack = LocalStack(settings, progress=lambda m: print(f"[stack] {m}", flush=True), die_with_parent=True)
        try:
            stack.up(components, flink=False)
            yield settings
        finally:
            stack.down()
