"""Kafka topic names, in one place. One readings topic keyed by device id keeps each device's readings ordered."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_PREFIX = "iotpipe"


@dataclass(frozen=True)
class Topics:
    """The topics of one pipeline. Every name starts with the pipeline's prefix, so pipelines never mix."""

    prefix: str = DEFAULT_PREFIX

    @property
    def readings(self) -> str:
        """Device readings, produced by the simulators (or real devices); key = device id."""
        return f"{self.prefix}.readings"

    @property
    def raw(self) -> str:
        """Every valid reading, copied by the stream job for storage."""
        return f"{self.prefix}.raw"

    @property
    def aggregates(self) -> str:
        """Daily aggregates and their revisions; key = site/name/day (upsert key)."""
        return f"{self.prefix}.aggregates"

    @property
    def late(self) -> str:
        """Readings that arrived after their day's allowed lateness."""
        return f"{self.prefix}.late"

    @property
    def deadletter(self) -> str:
        """Messages that could not be accepted, with the original bytes and a reason."""
        return f"{self.prefix}.deadletter"

    @property
    def sync_group(self) -> str:
        """The sync workers' Kafka consumer group unless IOTPIPE_SYNC_GROUP names another (the bridge reads its
        committed offsets: what is not in HBase yet)."""
        return f"{self.prefix}.hbase-sync"

    def all(self) -> tuple[str, ...]:
        return (self.readings, self.raw, self.aggregates, self.late, self.deadletter)
