"""Against the REAL HBase (Thrift1): the operator and the sync worker create byte-identical column families.

On Kubernetes the operator creates the tables (the sync worker runs with table creation off); locally the sync worker
does. Both must give every table what iotcommon.hbase_layout.families says (one version, row bloom filter, block cache
on, TTL only when asked), so each creates a pipeline's tables here and the descriptors HBase returns are compared.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hbase_sync.store import HBaseStore
from iot_operator.spec import TableSpec
from iot_operator.tables import HBaseAdmin
from iotcommon.hbase_layout import TABLES, table_name
from iotpipe_stack.testing import HBaseService

pytestmark = [pytest.mark.hbase]

TTLS = {"raw": 86_400, "late": 0, "aggregates": 0, "deadletters": 3_600}


def test_operator_and_sync_worker_create_identical_column_families(
    hbase_service: HBaseService, unique_name: Callable[[str], str]
) -> None:
    by_operator, by_worker = unique_name("fam_op"), unique_name("fam_sync")
    admin = HBaseAdmin(hbase_service.thrift_host, hbase_service.thrift_port, "buffered", "binary", 30.0)
    store = HBaseStore(hbase_service.thrift_host, hbase_service.thrift_port, by_worker, ttls=TTLS)
    conn = hbase_service.connection()
    try:
        done, errors = admin.create([TableSpec(t, table_name(by_operator, t), TTLS[t]) for t in TABLES])
        assert errors == {}
        assert len(done) == len(TABLES)
        store.ensure_tables()  # the worker's start: connect, create what is missing
        for table in TABLES:
            from_operator = conn.table(table_name(by_operator, table)).families()
            from_worker = conn.table(table_name(by_worker, table)).families()
            assert from_operator == from_worker, table
            family = from_worker[b"d"]
            assert (family["max_versions"], family["bloom_filter_type"], family["block_cache_enabled"]) == \
                (1, b"ROW", True), table
            assert family["time_to_live"] == (TTLS[table] or 2**31 - 1), table  # HBase's "forever" when no TTL
    finally:
        store.close()
        for prefix in (by_operator, by_worker):
            for table in TABLES:
                if table_name(prefix, table).encode() in conn.tables():
                    conn.delete_table(table_name(prefix, table), disable=True)
        conn.close()
        admin.close()
