"""An IoTPipeline's spec, read into frozen dataclasses, plus the checks the CRD schema cannot express. Pure.

The API server applies the CRD's defaults before the operator sees an object; the same defaults are repeated here so
that a spec read from anywhere (a unit test, an old object) means the same thing. A unit test keeps both in step. The
component dataclasses hold their defaults once, and parse() reads them from there (``default``); only the kafka/hbase
settings without a dataclass field of their own keep literals in parse().
``InvalidSpec`` is a ConfigError: the operator reports it as Ready=False reason InvalidSpec and does not retry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iot_operator.config import OperatorConfig
from iotcommon.errors import ConfigError
from iotcommon.hbase_layout import TABLES
from iotcommon.topics import Topics
from iotcommon.zones import format_site_zones, parse_site_zones

#: logical topic name in the CR -> attribute of iotcommon.topics.Topics
TOPIC_KEYS = ("readings", "raw", "aggregates", "late", "deadletter")
MAX_TOPIC_NAME = 249
MAX_NAME = 40
_TOPIC_CHARS = re.compile(r"^[A-Za-z0-9._-]+$")


class InvalidSpec(ConfigError):
    """The spec passed the CRD schema but cannot be reconciled as it is."""


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
class TableSpec:
    key: str  # raw | aggregates | late | deadletters
    name: str  # full HBase name, "ns:prefix_raw" or "prefix_raw" in the default namespace
    ttl_seconds: int  # 0 = forever
    max_versions: int
    compression: str  # NONE | GZ | ...


@dataclass(frozen=True)
class Resources:
    cpu: str | None = None
    memory: str | None = None


@dataclass(frozen=True)
class CheckpointVolume:
    """The PersistentVolumeClaim that holds checkpoints (and HA metadata) when no storageUri is given."""

    size: str = "1Gi"
    storage_class: str | None = None
    access_mode: str = "ReadWriteOnce"


@dataclass(frozen=True)
class FlinkSpec:
    image: str
    flink_version: str = "v2_2"
    py_module: str = "stream_job"
    jar_uri: str = "local:///opt/flink/opt/flink-python-2.2.1.jar"
    python_executable: str = "/opt/venv/bin/python"
    parallelism: int = 1
    time_zone: str = "Europe/Athens"
    allowed_lateness_minutes: int = 2880
    checkpoint_interval_seconds: int = 30
    checkpoint_mode: str = "EXACTLY_ONCE"
    checkpoint_storage_uri: str | None = None
    checkpoint_volume: CheckpointVolume = field(default_factory=CheckpointVolume)
    savepoints_uri: str | None = None
    upgrade_mode: str = "last-state"
    restart_nonce: int = 0
    jm_cpu: float = 1.0
    jm_memory: str = "1024m"
    tm_replicas: int = 1
    tm_slots: int = 1
    tm_cpu: float = 1.0
    tm_memory: str = "1536m"
    configuration: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SyncSpec:
    image: str
    replicas: int = 1
    batch_size: int = 5000
    flush_interval_ms: int = 500
    consumer_group: str = ""
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class IngressSpec:
    enabled: bool = False
    class_name: str | None = None
    host: str | None = None
    path: str = "/"
    tls_secret_name: str | None = None


@dataclass(frozen=True)
class BridgeSpec:
    image: str
    replicas: int = 1
    port: int = 8765
    service_type: str = "ClusterIP"
    service_port: int = 80
    ingress: IngressSpec = field(default_factory=IngressSpec)
    auth_secret_name: str | None = None  # the user's Secret; None: the operator generates one (unless auth is off)
    auth_secret_key: str = "token"  # noqa: S105 - the key name inside the Secret, not a secret
    auth: str = "token"  # token | off (off only when the user asks for it)
    resources: Resources = field(default_factory=Resources)


@dataclass(frozen=True)
class SimulatorSpec:
    image: str
    replicas: int = 1
    sites_per_replica: int = 10
    speed: float = 900.0
    resources: Resources = field(default_factory=Resources)

    @property
    def sites(self) -> int:
        return self.replicas * self.sites_per_replica


@dataclass(frozen=True)
class GrafanaSpec:
    enabled: bool = True
    dashboard_label: str = "grafana_dashboard"
    folder: str = "iotpipe"
    datasource_uid: str = "prometheus"


@dataclass(frozen=True)
class PipelineSpec:
    """Everything the operator needs to know about one IoTPipeline, resolved (names, defaults, images)."""

    name: str
    namespace: str
    uid: str
    generation: int
    suspend: bool
    bootstrap: str
    topic_prefix: str
    topics: tuple[TopicSpec, ...]
    topic_deletion_policy: str
    thrift_host: str
    thrift_port: int
    thrift_transport: str
    thrift_protocol: str
    hbase_namespace: str
    table_prefix: str  # what services get as IOTPIPE_TABLE_PREFIX ("ns:prefix" outside the default namespace)
    tables: tuple[TableSpec, ...]
    table_deletion_policy: str
    flink: FlinkSpec
    sync: SyncSpec
    bridge: BridgeSpec
    simulators: SimulatorSpec
    grafana: GrafanaSpec
    site_zones: tuple[tuple[str, str], ...] = ()  # site -> IANA zone overrides of flink.timeZone, sorted

    @property
    def site_zones_text(self) -> str:
        """IOTPIPE_SITE_ZONES (iotcommon.zones format)."""
        return format_site_zones(dict(self.site_zones))

    @property
    def needs_finalizer(self) -> bool:
        """Only a Delete policy needs cleanup before the object goes; Retain leaves nothing to do."""
        return self.topic_deletion_policy == "Delete" or self.table_deletion_policy == "Delete"


def default(cls: type, name: str) -> Any:
    """A dataclass field's default: parse() reads the defaults from the dataclasses, never repeats them."""
    f = cls.__dataclass_fields__[name]  # type: ignore[attr-defined]
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"{where} must be an object")
    return value


def _resources(raw: Any, where: str) -> Resources:
    obj = _obj(raw, where)
    cpu, mem = obj.get("cpu"), obj.get("memory")
    return Resources(str(cpu) if cpu is not None else None, str(mem) if mem is not None else None)


def default_topic_prefix(namespace: str, name: str) -> str:
    return f"{namespace}.{name}"


def default_table_prefix(namespace: str, name: str) -> str:
    return f"{namespace}_{name}".replace("-", "_").replace(".", "_")


def strimzi_bootstrap(cluster: str, namespace: str) -> str:
    """The plain-listener bootstrap Service Strimzi creates for a Kafka cluster."""
    return f"{cluster}-kafka-bootstrap.{namespace}.svc:9092"


def _topics(kafka: Mapping[str, Any], prefix: str) -> tuple[TopicSpec, ...]:
    names = Topics(prefix)
    default_partitions = int(kafka.get("partitions", 3))
    default_rf = int(kafka.get("replicationFactor", 1))
    default_retention = int(kafka.get("retentionMs", 604800000))
    overrides: dict[str, Mapping[str, Any]] = {}
    for item in kafka.get("topics") or []:
        key = item.get("name")
        if key not in TOPIC_KEYS:
            raise InvalidSpec(f"kafka.topics: unknown topic {key!r}; topics are {', '.join(TOPIC_KEYS)}")
        overrides[key] = item
    out = []
    for key in TOPIC_KEYS:
        over = overrides.get(key, {})
        config = {str(k): str(v) for k, v in _obj(over.get("config"), f"kafka.topics[{key}].config").items()}
        if "retention.ms" in config and "retentionMs" in over:
            raise InvalidSpec(f"kafka.topics[{key}]: set retentionMs or config['retention.ms'], not both")
        config.setdefault("retention.ms", str(int(over.get("retentionMs", default_retention))))
        name = getattr(names, key)
        if len(name) > MAX_TOPIC_NAME:
            raise InvalidSpec(f"topic name {name[:40]}... is longer than Kafka's {MAX_TOPIC_NAME} characters")
        out.append(TopicSpec(key, name, int(over.get("partitions", default_partitions)),
                             int(over.get("replicationFactor", default_rf)), tuple(sorted(config.items()))))
    return tuple(out)


def _tables(hbase: Mapping[str, Any], prefix: str, namespace: str) -> tuple[TableSpec, ...]:
    default_ttl = int(hbase.get("ttlSeconds", 0))
    overrides = {item.get("name"): item for item in hbase.get("tables") or []}
    unknown = set(overrides) - set(TABLES)
    if unknown:
        raise InvalidSpec(f"hbase.tables: unknown table(s) {sorted(map(str, unknown))}; tables are {', '.join(TABLES)}")
    out = []
    for key in TABLES:
        over = overrides.get(key, {})
        full = f"{prefix}_{key}" if namespace == "default" else f"{namespace}:{prefix}_{key}"
        out.append(TableSpec(key, full, int(over.get("ttlSeconds", default_ttl)), int(over.get("maxVersions", 1)),
                             str(over.get("compression", "NONE"))))
    return tuple(out)


def parse(body: Mapping[str, Any], images: OperatorConfig) -> PipelineSpec:
    """Read an IoTPipeline object (metadata + spec). Raises InvalidSpec for what the schema lets through."""
    meta = _obj(body.get("metadata"), "metadata")
    spec = _obj(body.get("spec"), "spec")
    name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "default")
    if not name:
        raise InvalidSpec("metadata.name is empty")
    if len(name) > MAX_NAME:
        raise InvalidSpec(f"metadata.name must be at most {MAX_NAME} characters")

    kafka = _obj(spec.get("kafka"), "spec.kafka")
    if kafka.get("bootstrapServers") and kafka.get("strimziClusterRef"):
        raise InvalidSpec("set exactly one of kafka.bootstrapServers and kafka.strimziClusterRef")
    if kafka.get("bootstrapServers"):
        bootstrap = str(kafka["bootstrapServers"])
    elif kafka.get("strimziClusterRef"):
        ref = _obj(kafka["strimziClusterRef"], "kafka.strimziClusterRef")
        bootstrap = strimzi_bootstrap(str(ref.get("name")), str(ref.get("namespace") or namespace))
    else:
        raise InvalidSpec("kafka.bootstrapServers (or kafka.strimziClusterRef) is required")
    topic_prefix = str(kafka.get("topicPrefix") or default_topic_prefix(namespace, name))
    if not _TOPIC_CHARS.match(topic_prefix):
        raise InvalidSpec(f"topic prefix {topic_prefix!r} may only contain letters, digits, '.', '_' and '-'")
    if topic_prefix in (".", ".."):
        raise InvalidSpec("topic prefix cannot be '.' or '..'")

    hbase = _obj(spec.get("hbase"), "spec.hbase")
    thrift = _obj(hbase.get("thrift"), "hbase.thrift")
    if not thrift.get("host"):
        raise InvalidSpec("hbase.thrift.host is required")
    hbase_ns = str(hbase.get("namespace") or "default")
    base_prefix = str(hbase.get("tablePrefix") or default_table_prefix(namespace, name))
    table_prefix = base_prefix if hbase_ns == "default" else f"{hbase_ns}:{base_prefix}"

    flink_raw = _obj(spec.get("flink"), "spec.flink")
    ckpt = _obj(flink_raw.get("checkpointing"), "flink.checkpointing")
    vol = _obj(ckpt.get("volume"), "flink.checkpointing.volume")
    jm = _obj(_obj(flink_raw.get("jobManager"), "flink.jobManager").get("resources"), "flink.jobManager.resources")
    tm_raw = _obj(flink_raw.get("taskManager"), "flink.taskManager")
    tm = _obj(tm_raw.get("resources"), "flink.taskManager.resources")
    flink = FlinkSpec(
        image=str(flink_raw.get("image") or images.image_stream_job),
        flink_version=str(flink_raw.get("flinkVersion", default(FlinkSpec, "flink_version"))),
        py_module=str(flink_raw.get("pyModule", default(FlinkSpec, "py_module"))),
        jar_uri=str(flink_raw.get("jarURI", default(FlinkSpec, "jar_uri"))),
        python_executable=str(flink_raw.get("pythonExecutable", default(FlinkSpec, "python_executable"))),
        parallelism=int(flink_raw.get("parallelism", default(FlinkSpec, "parallelism"))),
        time_zone=str(flink_raw.get("timeZone", default(FlinkSpec, "time_zone"))),
        allowed_lateness_minutes=int(flink_raw.get("allowedLatenessMinutes",
                                                   default(FlinkSpec, "allowed_lateness_minutes"))),
        checkpoint_interval_seconds=int(ckpt.get("intervalSeconds",
                                                 default(FlinkSpec, "checkpoint_interval_seconds"))),
        checkpoint_mode=str(ckpt.get("mode", default(FlinkSpec, "checkpoint_mode"))),
        checkpoint_storage_uri=ckpt.get("storageUri") or None,
        checkpoint_volume=CheckpointVolume(
            size=str(vol.get("size", default(CheckpointVolume, "size"))),
            storage_class=vol.get("storageClassName") or None,
            access_mode=str(vol.get("accessMode", default(CheckpointVolume, "access_mode")))),
        savepoints_uri=flink_raw.get("savepointsUri"),
        upgrade_mode=str(flink_raw.get("upgradeMode", default(FlinkSpec, "upgrade_mode"))),
        restart_nonce=int(flink_raw.get("restartNonce", default(FlinkSpec, "restart_nonce"))),
        jm_cpu=float(jm.get("cpu", default(FlinkSpec, "jm_cpu"))),
        jm_memory=str(jm.get("memory", default(FlinkSpec, "jm_memory"))),
        tm_replicas=int(tm_raw.get("replicas", default(FlinkSpec, "tm_replicas"))),
        tm_slots=int(tm_raw.get("taskSlots", default(FlinkSpec, "tm_slots"))),
        tm_cpu=float(tm.get("cpu", default(FlinkSpec, "tm_cpu"))),
        tm_memory=str(tm.get("memory", default(FlinkSpec, "tm_memory"))),
        configuration=tuple(sorted((str(k), str(v)) for k, v in
                                   _obj(flink_raw.get("flinkConfiguration"), "flink.flinkConfiguration").items())),
    )
    try:
        ZoneInfo(flink.time_zone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidSpec(f"flink.timeZone {flink.time_zone!r} is not a known IANA time zone") from exc
    if flink.upgrade_mode == "savepoint" and flink.checkpoint_storage_uri and not flink.savepoints_uri:
        raise InvalidSpec("flink.savepointsUri is required with upgradeMode savepoint and a checkpointing.storageUri "
                          "(without a storageUri savepoints go to the checkpoint volume)")
    if flink.parallelism > flink.tm_replicas * flink.tm_slots:
        raise InvalidSpec("flink.parallelism must be at most flink.taskManager.replicas * flink.taskManager.taskSlots")

    sync_raw = _obj(spec.get("sync"), "spec.sync")
    sync = SyncSpec(
        image=str(sync_raw.get("image") or images.image_hbase_sync),
        replicas=int(sync_raw.get("replicas", default(SyncSpec, "replicas"))),
        batch_size=int(sync_raw.get("batchSize", default(SyncSpec, "batch_size"))),
        flush_interval_ms=int(sync_raw.get("flushIntervalMs", default(SyncSpec, "flush_interval_ms"))),
        consumer_group=str(sync_raw.get("consumerGroup") or f"{topic_prefix}.hbase-sync"),
        resources=_resources(sync_raw.get("resources"), "sync.resources"),
    )

    bridge_raw = _obj(spec.get("bridge"), "spec.bridge")
    ing = _obj(bridge_raw.get("ingress"), "bridge.ingress")
    svc = _obj(bridge_raw.get("service"), "bridge.service")
    auth = _obj(bridge_raw.get("authSecretRef"), "bridge.authSecretRef")
    ingress = IngressSpec(bool(ing.get("enabled", default(IngressSpec, "enabled"))), ing.get("className"),
                          ing.get("host"), str(ing.get("path", default(IngressSpec, "path"))), ing.get("tlsSecretName"))
    if ingress.enabled and not ingress.host:
        raise InvalidSpec("bridge.ingress.host is required when the ingress is enabled")
    if ingress.enabled and not auth.get("name"):
        raise InvalidSpec("bridge.authSecretRef is required when the ingress is enabled (the bridge would be public "
                          "without a token)")
    bridge = BridgeSpec(
        image=str(bridge_raw.get("image") or images.image_ws_bridge),
        replicas=int(bridge_raw.get("replicas", default(BridgeSpec, "replicas"))),
        port=int(bridge_raw.get("port", default(BridgeSpec, "port"))),
        service_type=str(svc.get("type", default(BridgeSpec, "service_type"))),
        service_port=int(svc.get("port", default(BridgeSpec, "service_port"))),
        ingress=ingress,
        auth_secret_name=auth.get("name"),
        auth_secret_key=str(auth.get("key", default(BridgeSpec, "auth_secret_key"))),
        auth=str(bridge_raw.get("auth", default(BridgeSpec, "auth"))),
        resources=_resources(bridge_raw.get("resources"), "bridge.resources"),
    )

    sim_raw = _obj(spec.get("simulators"), "spec.simulators")
    simulators = SimulatorSpec(
        image=str(sim_raw.get("image") or images.image_simulator),
        replicas=int(sim_raw.get("replicas", default(SimulatorSpec, "replicas"))),
        sites_per_replica=int(sim_raw.get("sitesPerReplica", default(SimulatorSpec, "sites_per_replica"))),
        speed=float(sim_raw.get("speed", default(SimulatorSpec, "speed"))),
        resources=_resources(sim_raw.get("resources"), "simulators.resources"),
    )
    if bridge.auth == "off" and bridge.auth_secret_name:
        raise InvalidSpec("bridge.auth is off but bridge.authSecretRef is set: choose one")
    if bridge.auth == "off" and ingress.enabled:
        raise InvalidSpec("bridge.auth cannot be off when the ingress is enabled (the bridge would be public)")
    site_zones = _site_zones(spec.get("siteZones"))

    graf = _obj(spec.get("grafana"), "spec.grafana")
    grafana = GrafanaSpec(bool(graf.get("enabled", default(GrafanaSpec, "enabled"))),
                          str(graf.get("dashboardLabel", default(GrafanaSpec, "dashboard_label"))),
                          str(graf.get("folder", default(GrafanaSpec, "folder"))),
                          str(graf.get("datasourceUid", default(GrafanaSpec, "datasource_uid"))))

    return PipelineSpec(
        name=name,
        namespace=namespace,
        uid=str(meta.get("uid", "")),
        generation=int(meta.get("generation") or 0),
        suspend=bool(spec.get("suspend", False)),
        bootstrap=bootstrap,
        topic_prefix=topic_prefix,
        topics=_topics(kafka, topic_prefix),
        topic_deletion_policy=str(kafka.get("topicDeletionPolicy", "Retain")),
        thrift_host=str(thrift["host"]),
        thrift_port=int(thrift.get("port", 9090)),
        thrift_transport=str(thrift.get("transport", "buffered")),
        thrift_protocol=str(thrift.get("protocol", "binary")),
        hbase_namespace=hbase_ns,
        table_prefix=table_prefix,
        tables=_tables(hbase, base_prefix, hbase_ns),
        table_deletion_policy=str(hbase.get("tableDeletionPolicy", "Retain")),
        flink=flink,
        sync=sync,
        bridge=bridge,
        simulators=simulators,
        grafana=grafana,
        site_zones=site_zones,
    )


def _site_zones(raw: Any) -> tuple[tuple[str, str], ...]:
    """spec.siteZones (site -> IANA zone), checked with the same rules the services apply to IOTPIPE_SITE_ZONES."""
    zones = {str(k): str(v) for k, v in _obj(raw, "spec.siteZones").items()}
    bad = [s for s, z in zones.items() if "," in s or "=" in s or "," in z or "=" in z]
    if bad:
        raise InvalidSpec(f"spec.siteZones: {bad[0]!r}: site ids and zones cannot contain ',' or '='")
    try:
        parsed = parse_site_zones(format_site_zones(zones))
    except ConfigError as exc:
        raise InvalidSpec(str(exc).replace("IOTPIPE_SITE_ZONES", "spec.siteZones")) from exc
    return tuple(sorted(parsed.items()))
