"""An IoTPipeline's spec, read into frozen dataclasses, plus the checks the CRD schema cannot express. Pure.

``parse`` reads each section with its own ``from_raw``: the data sections (kafka, hbase) here, the workloads in
``workloads``. Every default lives once, in its dataclass (``rawspec.given``). The API server applies the CRD's
defaults before the operator sees an object; test_op_spec.py checks that they mean the same as the dataclasses'.
``InvalidSpec`` is a ConfigError: the operator reports it as Ready=False reason InvalidSpec and does not retry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from iot_operator.config import OperatorConfig
from iot_operator.rawspec import InvalidSpec, given, section
from iot_operator.workloads import BridgeSpec, FlinkSpec, GrafanaSpec, SimulatorSpec, SyncSpec
from iotcommon.errors import ConfigError
from iotcommon.hbase_layout import TABLES
from iotcommon.topics import Topics
from iotcommon.zones import format_site_zones, parse_site_zones

__all__ = ["HBaseSpec", "InvalidSpec", "KafkaSpec", "PipelineSpec", "TableSpec", "ThriftSpec", "TopicSpec", "parse"]

#: logical topic name in the CR -> attribute of iotcommon.topics.Topics
TOPIC_KEYS = ("readings", "raw", "aggregates", "late", "deadletter")
MAX_TOPIC_NAME = 249
MAX_NAME = 40
_TOPIC_CHARS = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True)
class TopicSpec:
    key: str  # readings | raw | aggregates | late | deadletter
    name: str  # the Kafka topic name
    partitions: int
    replication_factor: int
    config: tuple[tuple[str, str], ...]  # sorted (key, value) pairs, retention.ms included

    @property
    def config_dict(self) -> dict[str, str]:
        return dict(self.config)


@dataclass(frozen=True)
class KafkaSpec:
    bootstrap: str
    topic_prefix: str
    topics: tuple[TopicSpec, ...] = ()
    partitions: int = 3  # of every topic without an override
    replication_factor: int = 1
    retention_ms: int = 604800000
    deletion_policy: str = "Retain"

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], namespace: str, name: str) -> KafkaSpec:
        """spec.kafka: the bootstrap (given or Strimzi's), the topic prefix and the five topics."""
        if raw.get("bootstrapServers") and raw.get("strimziClusterRef"):
            raise InvalidSpec("set exactly one of kafka.bootstrapServers and kafka.strimziClusterRef")
        if raw.get("bootstrapServers"):
            bootstrap = str(raw["bootstrapServers"])
        elif raw.get("strimziClusterRef"):
            ref = section(raw, "strimziClusterRef", "kafka")
            bootstrap = strimzi_bootstrap(str(ref.get("name")), str(ref.get("namespace") or namespace))
        else:
            raise InvalidSpec("kafka.bootstrapServers (or kafka.strimziClusterRef) is required")
        prefix = str(raw.get("topicPrefix") or default_topic_prefix(namespace, name))
        if not _TOPIC_CHARS.fullmatch(prefix):
            raise InvalidSpec(f"topic prefix {prefix!r} may only contain letters, digits, '.', '_' and '-'")
        if prefix in (".", ".."):
            raise InvalidSpec("topic prefix cannot be '.' or '..'")
        kafka = cls(bootstrap, prefix, **given(raw, {
            "partitions": ("partitions", int), "replicationFactor": ("replication_factor", int),
            "retentionMs": ("retention_ms", int), "topicDeletionPolicy": ("deletion_policy", str)}))
        return replace(kafka, topics=kafka._topics(raw.get("topics") or []))

    def _topics(self, items: list[Mapping[str, Any]]) -> tuple[TopicSpec, ...]:
        names = Topics(self.topic_prefix)
        overrides: dict[str, Mapping[str, Any]] = {}
        for item in items:
            key = item.get("name")
            if key not in TOPIC_KEYS:
                raise InvalidSpec(f"kafka.topics: unknown topic {key!r}; topics are {', '.join(TOPIC_KEYS)}")
            overrides[key] = item
        out = []
        for key in TOPIC_KEYS:
            over = overrides.get(key, {})
            config = {str(k): str(v) for k, v in section(over, "config", f"kafka.topics[{key}]").items()}
            if "retention.ms" in config and "retentionMs" in over:
                raise InvalidSpec(f"kafka.topics[{key}]: set retentionMs or config['retention.ms'], not both")
            config.setdefault("retention.ms", str(int(over.get("retentionMs", self.retention_ms))))
            name = getattr(names, key)
            if len(name) > MAX_TOPIC_NAME:
                raise InvalidSpec(f"topic name {name[:40]}... is longer than Kafka's {MAX_TOPIC_NAME} characters")
            out.append(TopicSpec(key, name, int(over.get("partitions", self.partitions)),
                                 int(over.get("replicationFactor", self.replication_factor)),
                                 tuple(sorted(config.items()))))
        return tuple(out)


@dataclass(frozen=True)
class TableSpec:
    key: str  # raw | aggregates | late | deadletters
    name: str  # full HBase name, "ns:prefix_raw" or "prefix_raw" in the default namespace
    ttl_seconds: int  # 0 = forever; default: the section's ttlSeconds
    max_versions: int = 1
    compression: str = "NONE"  # NONE | GZ | ...


@dataclass(frozen=True)
class ThriftSpec:
    host: str
    port: int = 9090
    transport: str = "buffered"
    protocol: str = "binary"


@dataclass(frozen=True)
class HBaseSpec:
    thrift: ThriftSpec
    table_prefix: str  # what services get as IOTPIPE_TABLE_PREFIX ("ns:prefix" outside the default namespace)
    tables: tuple[TableSpec, ...] = ()
    namespace: str = "default"
    ttl_seconds: int = 0  # of every table without an override; 0 = forever
    deletion_policy: str = "Retain"

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], namespace: str, name: str) -> HBaseSpec:
        """spec.hbase: the Thrift server, the table prefix and the four tables."""
        thrift = section(raw, "thrift", "hbase")
        if not thrift.get("host"):
            raise InvalidSpec("hbase.thrift.host is required")
        server = ThriftSpec(str(thrift["host"]), **given(thrift, {
            "port": ("port", int), "transport": ("transport", str), "protocol": ("protocol", str)}))
        hbase_ns = str(raw.get("namespace") or cls.namespace)
        base = str(raw.get("tablePrefix") or default_table_prefix(namespace, name))
        hbase = cls(server, base if hbase_ns == "default" else f"{hbase_ns}:{base}", namespace=hbase_ns,
                    **given(raw, {"ttlSeconds": ("ttl_seconds", int), "tableDeletionPolicy": ("deletion_policy", str)}))
        return replace(hbase, tables=hbase._tables(raw.get("tables") or []))

    def _tables(self, items: list[Mapping[str, Any]]) -> tuple[TableSpec, ...]:
        overrides = {item.get("name"): item for item in items}
        unknown = set(overrides) - set(TABLES)
        if unknown:
            raise InvalidSpec(f"hbase.tables: unknown table(s) {sorted(map(str, unknown))}; tables are "
                              f"{', '.join(TABLES)}")
        return tuple(TableSpec(key, f"{self.table_prefix}_{key}",
                               **{"ttl_seconds": self.ttl_seconds, **given(overrides.get(key, {}), {
                                   "ttlSeconds": ("ttl_seconds", int), "maxVersions": ("max_versions", int),
                                   "compression": ("compression", str)})})
                     for key in TABLES)


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the operator needs to know about one IoTPipeline, resolved (names, defaults, images)."""

    name: str
    namespace: str
    uid: str
    generation: int
    kafka: KafkaSpec
    hbase: HBaseSpec
    flink: FlinkSpec
    sync: SyncSpec
    bridge: BridgeSpec
    simulators: SimulatorSpec
    grafana: GrafanaSpec
    suspend: bool = False
    site_zones: tuple[tuple[str, str], ...] = ()  # site -> IANA zone overrides of flink.timeZone, sorted
    log_level: str = "INFO"  # of the pods: the operator's IOTPIPE_LOG_LEVEL
    log_format: str = "text"  # of the pods: the operator's IOTPIPE_LOG_FORMAT

    @property
    def site_zones_text(self) -> str:
        """IOTPIPE_SITE_ZONES (iotcommon.zones format)."""
        return format_site_zones(dict(self.site_zones))


def default_topic_prefix(namespace: str, name: str) -> str:
    return f"{namespace}.{name}"


def default_table_prefix(namespace: str, name: str) -> str:
    return f"{namespace}_{name}".replace("-", "_").replace(".", "_")


def strimzi_bootstrap(cluster: str, namespace: str) -> str:
    """The plain-listener bootstrap Service Strimzi creates for a Kafka cluster."""
    return f"{cluster}-kafka-bootstrap.{namespace}.svc:9092"


def parse(body: Mapping[str, Any], images: OperatorConfig) -> PipelineSpec:
    """Read an IoTPipeline object (metadata + spec). Raises InvalidSpec for what the schema lets through."""
    meta, spec = section(body, "metadata", ""), section(body, "spec", "")
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "default")
    if not name:
        raise InvalidSpec("metadata.name is empty")
    if len(name) > MAX_NAME:
        raise InvalidSpec(f"metadata.name must be at most {MAX_NAME} characters")
    kafka = KafkaSpec.from_raw(section(spec, "kafka", "spec"), namespace, name)
    return PipelineSpec(
        name=name,
        namespace=namespace,
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        kafka=kafka,
        hbase=HBaseSpec.from_raw(section(spec, "hbase", "spec"), namespace, name),
        flink=FlinkSpec.from_raw(section(spec, "flink", "spec"), images.image_stream_job),
        sync=SyncSpec.from_raw(section(spec, "sync", "spec"), images.image_hbase_sync, kafka.topic_prefix),
        bridge=BridgeSpec.from_raw(section(spec, "bridge", "spec"), images.image_ws_bridge),
        simulators=SimulatorSpec.from_raw(section(spec, "simulators", "spec"), images.image_simulator),
        grafana=GrafanaSpec.from_raw(section(spec, "grafana", "spec")),
        site_zones=_site_zones(section(spec, "siteZones", "spec")),
        log_level=images.log_level,
        log_format=images.log_format,
        **given(spec, {"suspend": ("suspend", bool)}),
    )


def _site_zones(raw: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """spec.siteZones (site -> IANA zone), checked with the same rules the services apply to IOTPIPE_SITE_ZONES."""
    zones = {str(k): str(v) for k, v in raw.items()}
    bad = [s for s, z in zones.items() if "," in s or "=" in s or "," in z or "=" in z]
    if bad:
        raise InvalidSpec(f"spec.siteZones: {bad[0]!r}: site ids and zones cannot contain ',' or '='")
    try:
        parsed = parse_site_zones(format_site_zones(zones))
    except ConfigError as exc:
        raise InvalidSpec(str(exc).replace("IOTPIPE_SITE_ZONES", "spec.siteZones")) from exc
    return tuple(sorted(parsed.items()))
