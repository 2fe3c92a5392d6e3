"""The pipeline's HBase tables: family ``d`` with iotcommon.hbase_layout.family_options, TTL per table. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iotcommon.hbase_layout import FAMILY, TABLES, family_options

FOREVER = 0x7FFFFFFF  # HConstants.FOREVER: what HBase reports for "no TTL"


def table_families(ttls: Mapping[str, int]) -> dict[str, dict[str, dict[str, Any]]]:
    """Short table name -> families argument of ``create_table``, for every table of a pipeline."""
    return {table: {FAMILY: family_options(ttls.get(table, 0))} for table in TABLES}


def ttl_of(descriptor: Mapping[str, Any]) -> int:
    """TTL in seconds from a happybase family descriptor (``Table.families()``); 0 = forever."""
    ttl = int(descriptor.get("time_to_live", FOREVER))
    return 0 if ttl <= 0 or ttl >= FOREVER else ttl
