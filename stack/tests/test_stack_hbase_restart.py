"""Real standalone HBase killed with -9 (master, region server and ZooKeeper: the whole process group) and started again
on the same data directory, as `LocalStack.kill` / `restart_service` do in the chaos run (docs/chaos.md).

While the master recovers, clients keep listing the tables through Thrift, as the probes and the sync worker's
reconnects do. That is what once kept a restarted master from ever initialising: every `tables()` held one of the
master's RPC handlers in a read of hbase:meta, still on the dead server, and the region server's "WAL split done"
report found no handler (fixed by hbase.split.wal.zk.coordinated, render.py). The test needs HBase to serve again and
every row it acknowledged before the kill to be there (docs/storage.md, "Durability": the WAL reaches the operating
system before a write is acknowledged, so a killed process loses nothing acknowledged).

Own stack in a temporary home on free ports (not the session's HBase, which other tests use)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import happybase
import pytest

from iotpipe_stack import probes
from iotpipe_stack.testing import TestStack

pytestmark = [pytest.mark.hbase, pytest.mark.slow, pytest.mark.timeout(2400)]

#: generous: on the shared 2-core machine a restarted master has taken minutes; the bug this guards against never
#: came back (it hung until LocalHBaseCluster's init timeout, 15 min, and exited)
BACK_WITHIN_S = 600.0
#: client threads listing the tables while HBase recovers (20 reproduced the hang in every try without the fix)
LISTERS = 20
ROUNDS = 2


@pytest.fixture(scope="module")
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestStack]:
    environ = {k: v for k, v in os.environ.items() if k in ("IOTPIPE_CACHE", "IOTPIPE_FLINK_VENV")}
    ts = TestStack(tmp_path_factory.mktemp("hbase-restart-home"), environ)
    try:
        ts.ensure(["hbase", "thrift"], "HBase + Thrift")
        yield ts
    finally:
        ts.close()


def _connect(ts: TestStack, timeout_ms: int = 60_000) -> Any:
    return happybase.Connection(ts.stack.s.host, ts.stack.s.thrift_port, timeout=timeout_ms)


def _list_tables_until(ts: TestStack, stop: threading.Event) -> None:
    """What the readiness probe does: `tables()` with a 5 s timeout, again and again (the Thrift server keeps each
    abandoned call running against the master)."""
    while not stop.is_set():
        probes.thrift_ready(ts.stack.s.host, ts.stack.s.thrift_port, timeout=5.0)
        stop.wait(0.5)


def _read_all(ts: TestStack, table: str) -> dict[bytes, dict[bytes, bytes]] | None:
    """Every row of `table` through Thrift, or None while HBase does not serve."""
    conn = None
    try:
        conn = _connect(ts, timeout_ms=30_000)
        conn.tables()
        return dict(conn.table(table).scan())
    except Exception:  # TTransportException, socket timeout, IOError while regions are assigned
        return None
    finally:
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


def _write_acknowledged(ts: TestStack, table: str, prefix: str, count: int) -> dict[bytes, dict[bytes, bytes]]:
    """`count` rows, each put on its own and answered by the server before the next: all acknowledged."""
    rows: dict[bytes, dict[bytes, bytes]] = {}
    conn = _connect(ts)
    try:
        t = conn.table(table)
        for i in range(count):
            key = f"{prefix}-{i:05d}".encode()
            value = {b"d:m": f'{{"i": {i}, "round": "{prefix}"}}'.encode()}
            t.put(key, value)
            rows[key] = value
        batch_rows = {f"{prefix}-b{i:05d}".encode(): {b"d:m": str(i).encode()} for i in range(count)}
        with t.batch() as batch:  # one mutateRows call, acknowledged when the block ends
            for key, value in batch_rows.items():
                batch.put(key, value)
        rows.update(batch_rows)
    finally:
        conn.close()
    return rows


def _wait_back(ts: TestStack, table: str, what: str) -> dict[bytes, dict[bytes, bytes]]:
    deadline = time.monotonic() + BACK_WITHIN_S
    while time.monotonic() < deadline:
        if ts.stack.running_pid("hbase") is None:
            raise AssertionError(f"HBase exited while recovering ({what}):\n{ts.stack.died_error('hbase')}")
        rows = _read_all(ts, table)
        if rows is not None:
            return rows
        time.sleep(2.0)
    raise AssertionError(f"HBase did not serve again within {BACK_WITHIN_S:.0f} s ({what}):\n"
                         f"{ts.stack.died_error('hbase', 'not back')}")  # fmt: skip


def test_kill_9_then_restart_serves_every_acknowledged_row(
    own_stack: TestStack, unique_name: Callable[[str], str]
) -> None:
    ts = own_stack
    table = unique_name("crash")
    conn = _connect(ts)
    conn.create_table(table, {"d": {"max_versions": 1}})
    conn.close()

    acknowledged: dict[bytes, dict[bytes, bytes]] = {}
    for rnd in range(ROUNDS):
        acknowledged |= _write_acknowledged(ts, table, f"r{rnd}", 300)

        stop = threading.Event()
        listers = [threading.Thread(target=_list_tables_until, args=(ts, stop), daemon=True) for _ in range(LISTERS)]
        assert ts.stack.kill("hbase"), "HBase was running"
        try:
            for t in listers:
                t.start()
            ts.stack.restart_service("hbase", timeout=BACK_WITHIN_S)  # ZooKeeper listens again
            stored = _wait_back(ts, table, f"kill {rnd + 1} of {ROUNDS}")
        finally:
            stop.set()
            for t in listers:
                t.join(timeout=60)

        missing = sorted(set(acknowledged) - set(stored))
        assert not missing, f"kill {rnd + 1}: {len(missing)} acknowledged rows lost, e.g. {missing[:5]}"
        assert {k: stored[k] for k in acknowledged} == acknowledged
        assert set(stored) == set(acknowledged)  # nothing else appeared

    # and it takes writes again
    conn = _connect(ts)
    try:
        conn.table(table).put(b"after", {b"d:m": b"1"})
        assert conn.table(table).row(b"after") == {b"d:m": b"1"}
        assert table.encode() in conn.tables()
    finally:
        conn.close()

