"""The pipeline's HBase tables: one family ``d``, one version per cell, a row bloom filter, an optional TTL. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from iotcommon.hbase_layout import FAMILY, TABLES

FOREVER = 0x7FFFFFFF  # HConstants.FOREVER: what HBase reports for "no TTL"


def family_options(ttl_s: int) -> dict[str, Any]:
    """happybase ``create_table`` options of family ``d``. ``ttl_s`` 0 means keep forever.

    One version: every row is written by one deterministic mapping (same key -> same content, or a higher aggregate
    revision), so older versions carry nothing worth keeping and would only cost space.
    """
    options: dict[str, Any] = {"max_versions": 1, "bloom_filter_type": "ROW", "block_cache_enabled": True}
    if ttl_s > 0:
        options["time_to_live"] = ttl_s
    return options


def table_families(ttls: Mapping[str, int]) -> dict[str, dict[str, dict[str, Any]]]:
    """Short table name -> families argument of ``create_table``, for every table of a pipeline."""
    return {table: {FAMILY: family_options(ttls.get(table, 0))} for table in TABLES}


def ttl_of(descriptor: Mapping[str, Any]) -> int:
    """TTL in seconds from a happybase family descriptor (``Table.families()``); 0 = forever."""
    ttl = int(descriptor.get("time_to_live", FOREVER))
    return 0 if ttl <= 0 or ttl >= FOREVER else ttl
