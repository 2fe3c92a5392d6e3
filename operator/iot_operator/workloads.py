"""The workload sections of an IoTPipeline's spec (flink, sync, bridge, simulators, grafana), each read by its own
``from_raw`` with the checks the CRD schema cannot make. Pure. The defaults are the dataclass defaults (rawspec)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iot_operator.rawspec import InvalidSpec, given, optional_str, section
from iotcommon.topics import Topics


@dataclass(frozen=True)
class Resources:
    cpu: str | None = None
    memory: str | None = None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> Resources:
        return cls(**given(raw, {"cpu": ("cpu", str), "memory": ("memory", str)}))


@dataclass(frozen=True)
class CheckpointVolume:
    """The PersistentVolumeClaim that holds checkpoints (and HA metadata) when no storageUri is given."""

    size: str = "1Gi"
    storage_class: str | None = None
    access_mode: str = "ReadWriteOnce"

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> CheckpointVolume:
        return cls(storage_class=optional_str(raw.get("storageClassName")),
                   **given(raw, {"size": ("size", str), "accessMode": ("access_mode", str)}))


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

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], image: str) -> FlinkSpec:
        """spec.flink; ``image`` is the operator's default image."""
        ckpt = section(raw, "checkpointing", "flink")
        jm = section(section(raw, "jobManager", "flink"), "resources", "flink.jobManager")
        tm = section(raw, "taskManager", "flink")
        tm_res = section(tm, "resources", "flink.taskManager")
        conf = section(raw, "flinkConfiguration", "flink")
        f = cls(
            image=str(raw.get("image") or image),
            checkpoint_storage_uri=optional_str(ckpt.get("storageUri")),
            checkpoint_volume=CheckpointVolume.from_raw(section(ckpt, "volume", "flink.checkpointing")),
            savepoints_uri=optional_str(raw.get("savepointsUri")),
            configuration=tuple(sorted((str(k), str(v)) for k, v in conf.items())),
            **given(raw, {"flinkVersion": ("flink_version", str), "pyModule": ("py_module", str),
                          "jarURI": ("jar_uri", str), "pythonExecutable": ("python_executable", str),
                          "parallelism": ("parallelism", int), "timeZone": ("time_zone", str),
                          "allowedLatenessMinutes": ("allowed_lateness_minutes", int),
                          "upgradeMode": ("upgrade_mode", str), "restartNonce": ("restart_nonce", int)}),
            **given(ckpt, {"intervalSeconds": ("checkpoint_interval_seconds", int), "mode": ("checkpoint_mode", str)}),
            **given(jm, {"cpu": ("jm_cpu", float), "memory": ("jm_memory", str)}),
            **given(tm, {"replicas": ("tm_replicas", int), "taskSlots": ("tm_slots", int)}),
            **given(tm_res, {"cpu": ("tm_cpu", float), "memory": ("tm_memory", str)}),
        )
        try:
            ZoneInfo(f.time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise InvalidSpec(f"flink.timeZone {f.time_zone!r} is not a known IANA time zone") from exc
        if f.upgrade_mode == "savepoint" and f.checkpoint_storage_uri and not f.savepoints_uri:
            raise InvalidSpec("flink.savepointsUri is required with upgradeMode savepoint and a checkpointing."
                              "storageUri (without a storageUri savepoints go to the checkpoint volume)")
        if f.parallelism > f.tm_replicas * f.tm_slots:
            raise InvalidSpec("flink.parallelism must be at most flink.taskManager.replicas * "
                              "flink.taskManager.taskSlots")
        return f


@dataclass(frozen=True)
class SyncSpec:
    image: str
    consumer_group: str
    replicas: int = 1
    batch_size: int = 5000
    flush_interval_ms: int = 500
    resources: Resources = field(default_factory=Resources)

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], image: str, topic_prefix: str) -> SyncSpec:
        """spec.sync; the consumer group defaults to ``<topicPrefix>.hbase-sync``."""
        return cls(image=str(raw.get("image") or image),
                   consumer_group=str(raw.get("consumerGroup") or Topics(topic_prefix).sync_group),
                   resources=Resources.from_raw(section(raw, "resources", "sync")),
                   **given(raw, {"replicas": ("replicas", int), "batchSize": ("batch_size", int),
                                 "flushIntervalMs": ("flush_interval_ms", int)}))


@dataclass(frozen=True)
class IngressSpec:
    enabled: bool = False
    class_name: str | None = None
    host: str | None = None
    path: str = "/"
    tls_secret_name: str | None = None

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> IngressSpec:
        return cls(class_name=optional_str(raw.get("className")), host=optional_str(raw.get("host")),
                   tls_secret_name=optional_str(raw.get("tlsSecretName")),
                   **given(raw, {"enabled": ("enabled", bool), "path": ("path", str)}))


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

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], image: str) -> BridgeSpec:
        ingress = IngressSpec.from_raw(section(raw, "ingress", "bridge"))
        ref = section(raw, "authSecretRef", "bridge")
        b = cls(image=str(raw.get("image") or image), ingress=ingress, auth_secret_name=optional_str(ref.get("name")),
                resources=Resources.from_raw(section(raw, "resources", "bridge")),
                **given(raw, {"replicas": ("replicas", int), "port": ("port", int), "auth": ("auth", str)}),
                **given(section(raw, "service", "bridge"), {"type": ("service_type", str),
                                                            "port": ("service_port", int)}),
                **given(ref, {"key": ("auth_secret_key", str)}))
        if ingress.enabled and not ingress.host:
            raise InvalidSpec("bridge.ingress.host is required when the ingress is enabled")
        if ingress.enabled and not b.auth_secret_name:
            raise InvalidSpec("bridge.authSecretRef is required when the ingress is enabled (the bridge would be "
                              "public without a token)")
        if b.auth == "off" and b.auth_secret_name:
            raise InvalidSpec("bridge.auth is off but bridge.authSecretRef is set: choose one")
        if b.auth == "off" and ingress.enabled:
            raise InvalidSpec("bridge.auth cannot be off when the ingress is enabled (the bridge would be public)")
        return b


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

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any], image: str) -> SimulatorSpec:
        return cls(image=str(raw.get("image") or image),
                   resources=Resources.from_raw(section(raw, "resources", "simulators")),
                   **given(raw, {"replicas": ("replicas", int), "sitesPerReplica": ("sites_per_replica", int),
                                 "speed": ("speed", float)}))


@dataclass(frozen=True)
class GrafanaSpec:
    enabled: bool = True
    dashboard_label: str = "grafana_dashboard"
    folder: str = "iotpipe"
    datasource_uid: str = "prometheus"

    @classmethod
    def from_raw(cls, raw: Mapping[str, Any]) -> GrafanaSpec:
        return cls(**given(raw, {"enabled": ("enabled", bool), "dashboardLabel": ("dashboard_label", str),
                                 "folder": ("folder", str), "datasourceUid": ("datasource_uid", str)}))
