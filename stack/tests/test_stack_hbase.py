"""Real HBase standalone through the Thrift1 server with happybase: create, put, scan; Thrift restart keeps data."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from iotpipe_stack.testing import HBaseService

pytestmark = pytest.mark.hbase


def test_create_put_scan(hbase_service: HBaseService, unique_name: Callable[[str], str]) -> None:
    name = unique_name("smoke")
    conn = hbase_service.connection()
    try:
        conn.create_table(name, {"d": {"max_versions": 1}})
        table = conn.table(name)
        rows = {f"site-a/sensor-{i:02d}".encode(): {b"d:v": str(i * 1.5).encode()} for i in (3, 1, 2)}
        with table.batch() as batch:
            for key, data in rows.items():
                batch.put(key, data)

        scanned = list(table.scan())

        assert [k for k, _ in scanned] == sorted(rows)  # HBase returns rows in byte order of the key
        assert dict(scanned) == rows
        assert name.encode() in conn.tables()
        assert table.row(b"site-a/sensor-02") == {b"d:v": b"3.0"}
    finally:
        conn.close()


def test_thrift_restart_keeps_the_data(hbase_service: HBaseService, unique_name: Callable[[str], str]) -> None:
    name = unique_name("restart")
    conn = hbase_service.connection()
    conn.create_table(name, {"d": {}})
    conn.table(name).put(b"r1", {b"d:x": b"1"})
    conn.close()

    hbase_service.stop_thrift()
    assert not hbase_service.is_ready()
    hbase_service.start_thrift()

    conn = hbase_service.connection()
    try:
        assert list(conn.table(name).scan()) == [(b"r1", {b"d:x": b"1"})]
    finally:
        conn.close()
