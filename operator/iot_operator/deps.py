"""What ``reconcile`` needs from the world, as Protocols: the Kubernetes API, a Kafka admin and an HBase admin.

The real edges (``kube.Kube``, ``topics.KafkaAdmin``, ``tables.HBaseAdmin``) raise only iotcommon errors:
``ServiceUnavailable`` when a dependency cannot be reached (or the API server answers 5xx) and ``kube.ApiRefused``
when the API server refuses a request. Unit tests pass in-memory fakes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from iot_operator.config import OperatorConfig
from iot_operator.kube import Kube
from iot_operator.spec import PipelineSpec, TableSpec
from iot_operator.tables import HBaseAdmin, TableState
from iot_operator.topics import KafkaAdmin, TopicPlan, TopicState


class KubeApi(Protocol):
    def apply(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]: ...
    def get(self, path: str) -> dict[str, Any] | None: ...
    def list(self, api_version: str, kind: str, namespace: str | None,
             label_selector: str) -> list[dict[str, Any]]: ...
    def delete(self, obj: dict[str, Any]) -> bool: ...
    def patch_status(self, path: str, status: dict[str, Any]) -> None: ...
    def post_event(self, obj: Mapping[str, Any], event_type: str, reason: str, message: str) -> None: ...
    def serves(self, api_version: str, plural: str) -> bool: ...


class TopicAdmin(Protocol):
    def observe(self, names: Sequence[str]) -> dict[str, TopicState]: ...
    def apply(self, p: TopicPlan) -> tuple[list[str], dict[str, str]]: ...
    def delete(self, names: Sequence[str]) -> list[str]: ...


class TableAdmin(Protocol):
    def observe(self, desired: Sequence[TableSpec]) -> dict[str, TableState]: ...
    def create(self, tables: Sequence[TableSpec]) -> tuple[list[str], dict[str, str]]: ...
    def existing(self) -> list[str]: ...
    def delete(self, names: Sequence[str]) -> list[str]: ...
    def close(self) -> None: ...


@dataclass
class Deps:
    kube: KubeApi
    kafka: Callable[[PipelineSpec], TopicAdmin]
    hbase: Callable[[PipelineSpec], TableAdmin]


def real_deps(cfg: OperatorConfig) -> Deps:
    timeout = cfg.dependency_timeout_seconds
    return Deps(
        kube=Kube(),
        kafka=lambda p: KafkaAdmin(p.kafka.bootstrap, timeout),
        hbase=lambda p: HBaseAdmin(p.hbase.thrift.host, p.hbase.thrift.port, p.hbase.thrift.transport,
                                   p.hbase.thrift.protocol, timeout),
    )
