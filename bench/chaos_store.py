"""Read what the pipeline stored (HBase tables) and what it was given (the readings topic), for the chaos checks."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from chaos_expected import AggKey, Identity
from confluent_kafka import Consumer, KafkaError, TopicPartition


@dataclass
class Stored:
    raw: Counter[Identity] = field(default_factory=Counter)  # each row once; a value > 1 would be a doubled row
    late: set[Identity] = field(default_factory=set)
    deadletters: set[int] = field(default_factory=set)  # readings-topic offsets
    aggregates: dict[AggKey, tuple[float, int]] = field(default_factory=dict)


def _reading_ident(r: dict[str, Any]) -> Identity:
    from chaos_expected import _ms

    ms = _ms(r["ts"])
    assert ms is not None, r
    return (r["site"], r["sensor"], ms, r["seq"])


def read_tables(host: str, port: int, table_prefix: str) -> Stored:
    """Every row of the pipeline's four tables (a fresh Thrift connection)."""
    import happybase

    out = Stored()
    conn = happybase.Connection(host, port, timeout=60_000, table_prefix=table_prefix,
                                table_prefix_separator="_")
    try:
        for _, data in conn.table("raw").scan(columns=[b"d:m"], batch_size=5000):
            out.raw[_reading_ident(json.loads(data[b"d:m"]))] += 1
        for _, data in conn.table("late").scan(columns=[b"d:m"], batch_size=5000):
            out.late.add(_reading_ident(json.loads(data[b"d:m"])["reading"]))
        for _, data in conn.table("deadletters").scan(columns=[b"d:m"], batch_size=5000):
            out.deadletters.add(int(json.loads(data[b"d:m"])["offset"]))
        for _, data in conn.table("aggregates").scan(columns=[b"d:m"], batch_size=5000):
            a = json.loads(data[b"d:m"])
            out.aggregates[(a["site"], a["name"], a["day"])] = (float(a["value"]), int(a["count"]))
    finally:
        conn.close()
    return out


def read_topic(bootstrap: str, topic: str, committed: bool = True) -> list[tuple[int, bytes | None]]:
    """(offset, value) of every message of a one-partition topic, to its current end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-reader", "enable.auto.commit": False,
                         "isolation.level": "read_committed" if committed else "read_uncommitted",
                         "enable.partition.eof": True})
    try:
        consumer.assign([TopicPartition(topic, 0, 0)])
        out: list[tuple[int, bytes | None]] = []
        while True:
            msg = consumer.poll(5.0)
            if msg is None:
                continue
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    return out
                raise RuntimeError(f"reading {topic}: {err}")
            out.append((int(msg.offset() or 0), msg.value()))
    finally:
        consumer.close()


def end_offset(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "chaos-reader", "enable.auto.commit": False})
    try:
        _, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        return int(high)
    finally:
        consumer.close()
