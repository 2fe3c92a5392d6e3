"""Unit tests: which views each part of the job reads (the plan's shape, from the SQL strings alone; no Flink).

The job is planned in two parts, the query that feeds the day logic and the statement set of the sinks, and each part
plans its own copy of every view it reads. The clock (a keyed exchange and an OVER aggregate of every message) must
be planned once: only the day logic's part may read it.
"""

from __future__ import annotations

import re

from stream_job import sql
from stream_job.config import load_config

VIEW = re.compile(r"CREATE TEMPORARY VIEW (\w+) AS\b(.*)", re.S)


def _views() -> dict[str, str]:
    config = load_config([], {})
    statements = (sql.classified_view(config), sql.clocked_view(), sql.fast_valid_view(), sql.slow_view(config),
                  sql.slow_copy_view(config), sql.valid_view(), sql.routed_view(), sql.on_time_view())
    views = {}
    for statement in statements:
        match = VIEW.search(statement)
        assert match is not None, statement
        views[match.group(1)] = match.group(2)
    return views


def _reads(statement: str, views: dict[str, str]) -> set[str]:
    """The views a statement reads, directly or through other views."""
    seen: set[str] = set()
    todo = [statement]
    while todo:
        text = todo.pop()
        for name, body in views.items():
            if name not in seen and re.search(rf"\b{name}\b", text):
                seen.add(name)
                todo.append(body)
    return seen


def test_the_sinks_read_the_messages_before_the_clock() -> None:
    views = _views()
    for insert in sql.inserts():
        reads = _reads(insert, views)
        assert "classified" in reads, insert
        assert "clocked" not in reads, insert


def test_the_day_logic_reads_the_clock() -> None:
    views = _views()
    to_python = f"{sql.batched_query(60)}\nUNION ALL\n{sql.behind_query()}"
    assert {"clocked", "slow", "valid", "routed"} <= _reads(to_python, views)
    assert "slow_copy" not in _reads(to_python, views)
