"""Kafka topics of a pipeline: a pure plan (desired vs. observed) and the AdminClient edge that observes and applies it.

What the plan does: create missing topics, grow partitions, set drifted configs back (only the keys the spec sets).
What it reports instead of doing: fewer partitions than the topic has, a different replication factor (Kafka cannot
shrink a topic; changing replicas needs a reassignment) -> KafkaTopicsReady=False reason NotSupported.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from iot_operator.spec import TopicSpec
from iotcommon.errors import ServiceUnavailable

log = logging.getLogger(__name__)

#: seconds beyond a request's own timeout that its answer may take to arrive
SETTLE_MARGIN_S = 5.0


@dataclass(frozen=True)
class TopicState:
    name: str
    partitions: int
    replication_factor: int
    config: Mapping[str, str]


@dataclass
class TopicPlan:
    create: list[TopicSpec] = field(default_factory=list)
    grow: list[tuple[TopicSpec, int]] = field(default_factory=list)  # (desired, current partitions)
    alter: list[tuple[TopicSpec, dict[str, str]]] = field(default_factory=list)  # (desired, keys to set)
    unsupported: list[tuple[TopicSpec, str]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.create or self.grow or self.alter)


def plan(desired: Sequence[TopicSpec], actual: Mapping[str, TopicState]) -> TopicPlan:
    out = TopicPlan()
    for t in desired:
        cur = actual.get(t.name)
        if cur is None:
            out.create.append(t)
            continue
        if t.partitions > cur.partitions:
            out.grow.append((t, cur.partitions))
        elif t.partitions < cur.partitions:
            out.unsupported.append((t, f"topic {t.name} has {cur.partitions} partitions, the spec asks for "
                                       f"{t.partitions}: Kafka cannot remove partitions"))
        if t.replication_factor != cur.replication_factor:
            out.unsupported.append((t, f"topic {t.name} has replication factor {cur.replication_factor}, the spec "
                                       f"asks for {t.replication_factor}: changing it needs a partition reassignment"))
        drift = {k: v for k, v in t.config if cur.config.get(k) != v}
        if drift:
            out.alter.append((t, drift))
    return out


def topic_status(desired: Sequence[TopicSpec], actual: Mapping[str, TopicState],
                 problems: Mapping[str, str]) -> list[dict[str, Any]]:
    """status.topics: what exists now (after applying), per topic."""
    rows = []
    for t in desired:
        cur = actual.get(t.name)
        row: dict[str, Any] = {"name": t.key, "topicName": t.name, "ready": cur is not None and t.name not in problems}
        if cur is not None:
            row["partitions"] = cur.partitions
            row["replicationFactor"] = cur.replication_factor
        if t.name in problems:
            row["message"] = problems[t.name]
        rows.append(row)
    return rows


class KafkaAdmin:
    """The AdminClient edge. Every call raises ServiceUnavailable when the cluster cannot be reached."""

    def __init__(self, bootstrap: str, timeout_s: float) -> None:
        from confluent_kafka.admin import AdminClient

        self.timeout = timeout_s
        self.admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": int(timeout_s * 1000),
                                  "logger": logging.getLogger("iot_operator.kafka")})  # type: ignore[dict-item]
        self.bootstrap = bootstrap

    def _settle(self, futures: Mapping[Any, Any]) -> Mapping[Any, Any]:
        """Waits until every request has its answer (each has a request timeout) before any is read: a result that
        raises must not leave requests in flight when the client is dropped, which can crash the process in
        confluent-kafka (confluentinc/confluent-kafka-python#1761)."""
        concurrent.futures.wait(list(futures.values()), timeout=self.timeout + SETTLE_MARGIN_S)
        return futures

    def _unavailable(self, exc: Exception) -> ServiceUnavailable:
        return ServiceUnavailable(f"Kafka at {self.bootstrap} is unreachable: {exc}")

    def observe(self, names: Sequence[str]) -> dict[str, TopicState]:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import ConfigResource, ResourceType  # type: ignore[attr-defined]

        try:
            meta = self.admin.list_topics(timeout=self.timeout)
        except KafkaException as exc:
            raise self._unavailable(exc) from exc
        present = [n for n in names if n in meta.topics and meta.topics[n].error is None]
        states: dict[str, TopicState] = {}
        if not present:
            return states
        futures = self._settle(self.admin.describe_configs([ConfigResource(ResourceType.TOPIC, n) for n in present],
                                                           request_timeout=self.timeout))
        for res, fut in futures.items():
            try:
                entries = fut.result(timeout=self.timeout)
            except KafkaException as exc:
                raise self._unavailable(exc) from exc
            tm = meta.topics[res.name]
            first = tm.partitions[min(tm.partitions)] if tm.partitions else None
            states[res.name] = TopicState(res.name, len(tm.partitions), len(first.replicas) if first else 0,
                                          {k: str(e.value) for k, e in entries.items() if e.value is not None})
        return states

    def apply(self, p: TopicPlan) -> tuple[list[str], dict[str, str]]:
        """Carry out the plan. Returns (what was done, per-topic errors)."""
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import (  # type: ignore[attr-defined]
            AlterConfigOpType,
            ConfigEntry,
            ConfigResource,
            NewPartitions,
            NewTopic,
            ResourceType,
        )

        done: list[str] = []
        errors: dict[str, str] = {}

        def wait(futures: Mapping[Any, Any], what: str, ok_codes: tuple[int, ...] = ()) -> None:
            for target, fut in self._settle(futures).items():
                name = target if isinstance(target, str) else target.name
                try:
                    fut.result(timeout=self.timeout)
                    done.append(f"{what} {name}")
                except KafkaException as exc:
                    err = exc.args[0] if exc.args else None
                    code = err.code() if isinstance(err, KafkaError) else None
                    if code in ok_codes:
                        continue
                    if code in (KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN):
                        raise self._unavailable(exc) from exc
                    errors[name] = f"{what} {name} failed: {err.str() if isinstance(err, KafkaError) else exc}"

        if p.create:
            new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=t.replication_factor,
                            config=t.config_dict) for t in p.create]
            wait(self.admin.create_topics(new, operation_timeout=self.timeout, request_timeout=self.timeout),
                 "created topic", (KafkaError.TOPIC_ALREADY_EXISTS,))
        if p.grow:
            parts = [NewPartitions(t.name, t.partitions) for t, _ in p.grow]
            wait(self.admin.create_partitions(parts, operation_timeout=self.timeout, request_timeout=self.timeout),
                 "grew partitions of topic")
        if p.alter:
            resources = [ConfigResource(ResourceType.TOPIC, t.name, incremental_configs=[
                ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in sorted(changes.items())])
                for t, changes in p.alter]
            wait(self.admin.incremental_alter_configs(resources, request_timeout=self.timeout),
                 "corrected config drift of topic")
        return done, errors

    def delete(self, names: Sequence[str]) -> list[str]:
        from confluent_kafka import KafkaError, KafkaException

        if not names:
            return []
        deleted = []
        futures = self._settle(self.admin.delete_topics(list(names), operation_timeout=self.timeout,
                                                        request_timeout=self.timeout))
        for name, fut in futures.items():
            try:
                fut.result(timeout=self.timeout)
                deleted.append(name)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    continue
                raise self._unavailable(exc) from exc
        return deleted
