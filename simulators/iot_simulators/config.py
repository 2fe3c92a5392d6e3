"""Settings of the simulator (``iotcommon.config``: flag > env var > default) and the run plan derived from them."""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from iot_simulators.late import LateRule, parse_rules
from iot_simulators.timeline import STEP_S, Timeline
from iotcommon import days
from iotcommon.config import setting
from iotcommon.errors import ConfigError
from iotcommon.logs import log_format_setting, log_level_setting
from iotcommon.zones import SiteZones

COMPRESSIONS = ("lz4", "zstd", "snappy", "gzip", "none")
_ORDINAL = re.compile(r"-(\d+)$")


@dataclass(frozen=True)
class SimConfig:
    bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers", env="IOTPIPE_KAFKA_BOOTSTRAP")
    topic_prefix: str = setting("iotpipe", "topic prefix; readings go to <prefix>.readings",
                                env="IOTPIPE_TOPIC_PREFIX")
    site_tz: str = setting(days.DEFAULT_TZ, "default time zone of the sites (their local days, DST); --start and "
                           "--until are read in it", env="IOTPIPE_SITE_TZ")
    site_zones: str = setting("", "per-site zones 'site-00002=America/New_York,site-00003=Asia/Kolkata' (other sites: "
                              "--site-tz); each site's days, midnight meters, motion days and temperature curve follow "
                              "its own zone, on the same UTC step grid", env="IOTPIPE_SITE_ZONES")
    log_level: str = log_level_setting()
    log_format: str = log_format_setting()
    sites: int = setting(1, "number of sites (buildings) simulated by this process", env="IOTPIPE_SIM_SITES",
                         minimum=1, maximum=1_000_000)
    site_offset: int = setting(-1, "sites are numbered offset+1 .. offset+sites (site-00001 ...); -1: "
                               "replica index x sites", env="IOTPIPE_SIM_SITE_OFFSET", minimum=-1)
    replica_index: str = setting("", "this replica's index (0, 1, ...), or 'hostname' to take the StatefulSet "
                                 "ordinal from the host name (name-3 -> 3); empty: 0", env="IOTPIPE_REPLICA_INDEX")
    start: str = setting("2020-01-01T00:00", "simulated start instant; local time of the site zone unless it "
                         "carries Z or an offset; on a quarter hour", env="IOTPIPE_SIM_START")
    speed: str = setting("900", "simulated seconds per real second (900: one 15-minute step per second), or "
                         "'max' (as fast as possible)", env="IOTPIPE_SIM_SPEED")
    steps: int = setting(0, "stop after this many 15-minute steps (0: no limit)", env="IOTPIPE_SIM_STEPS",
                         minimum=0)
    until: str = setting("", "stop after the step at this simulated instant (same format as --start; empty: "
                         "no limit)", env="IOTPIPE_SIM_UNTIL")
    seed: int = setting(1, "random seed; the same seed gives the same readings", env="IOTPIPE_SIM_SEED",
                        minimum=0, maximum=2**63 - 1)
    late: tuple[str, ...] = setting(("20:2d", "120:10d"), "late W1 readings, EVERY:DELAY,...: every EVERY steps "
                                    "deliver the reading withheld DELAY earlier (d/h/m; empty: none)",
                                    env="IOTPIPE_SIM_LATE")
    compression: str = setting("lz4", "Kafka compression", env="IOTPIPE_SIM_COMPRESSION", choices=COMPRESSIONS)
    linger_ms: float = setting(20.0, "producer linger (batching delay) in ms", env="IOTPIPE_SIM_LINGER_MS",
                               minimum=0, maximum=60_000)
    batch_bytes: int = setting(1_000_000, "producer batch size in bytes", env="IOTPIPE_SIM_BATCH_BYTES",
                               minimum=1_000, maximum=100_000_000)
    delivery_timeout_s: float = setting(120.0, "give up on a reading not acknowledged within this time (librdkafka "
                                        "retries until then), then exit non-zero", env="IOTPIPE_SIM_DELIVERY_TIMEOUT_S",
                                        minimum=1, maximum=3600)
    connect_timeout_s: float = setting(60.0, "at start, wait this long for Kafka before failing",
                                       env="IOTPIPE_SIM_CONNECT_TIMEOUT_S", minimum=1, maximum=3600)
    create_topic: bool = setting(True, "create the readings topic if it is missing", env="IOTPIPE_SIM_CREATE_TOPIC")
    partitions: int = setting(6, "partitions of the readings topic when this process creates it",
                              env="IOTPIPE_SIM_PARTITIONS", minimum=1, maximum=10_000)
    progress_s: float = setting(10.0, "seconds between progress lines", env="IOTPIPE_SIM_PROGRESS_S",
                                minimum=0.1, maximum=3600)


@dataclass(frozen=True)
class ZoneSites:
    """The sites of one time zone and their timeline (the same UTC step grid in every zone)."""

    zone: str
    timeline: Timeline
    site_numbers: list[int]


@dataclass(frozen=True)
class Plan:
    """What to run, validated."""

    timeline: Timeline  # in the default zone (--site-tz): start, progress lines
    site_numbers: list[int]
    stop: int | None  # steps 0 .. stop-1; None: forever
    step_seconds: float  # real seconds per step; 0: as fast as possible
    late_rules: tuple[LateRule, ...]
    topic: str
    zones: tuple[ZoneSites, ...] = ()  # empty: every site in the timeline's zone

    def groups(self) -> tuple[ZoneSites, ...]:
        """The sites grouped by zone, the default zone's group first (if it has sites)."""
        return self.zones or (ZoneSites(self.timeline.tz.key, self.timeline, self.site_numbers),)


def zone_groups(start: datetime, site_numbers: list[int], zones: SiteZones) -> tuple[ZoneSites, ...]:
    """Group the sites by their zone (``IOTPIPE_SITE_ZONES`` by site id, else the default zone)."""
    from iot_simulators.encoding import site_id

    by_zone: dict[str, list[int]] = {name: [] for name in zones.names()}
    for number in site_numbers:
        by_zone[zones.name(site_id(number))].append(number)
    return tuple(ZoneSites(name, Timeline(start, ZoneInfo(name)), numbers)
                 for name, numbers in by_zone.items() if numbers)


def parse_instant(text: str, tz: ZoneInfo, what: str) -> datetime:
    try:
        ts = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        msg = f"{what}: {text!r} is not an ISO 8601 date-time such as 2020-01-01T00:00 ({exc})"
        raise ConfigError(msg) from exc
    return ts.replace(tzinfo=tz) if ts.tzinfo is None else ts


def replica_offset(cfg: SimConfig, environ: Mapping[str, str]) -> int:
    if cfg.site_offset >= 0:
        return cfg.site_offset
    raw = cfg.replica_index.strip()
    if not raw:
        return 0
    if raw == "hostname":
        host = environ.get("HOSTNAME") or socket.gethostname()
        match = _ORDINAL.search(host)
        if not match:
            msg = f"replica index 'hostname': host name {host!r} does not end in -<ordinal>"
            raise ConfigError(msg)
        index = int(match[1])
    else:
        try:
            index = int(raw)
        except ValueError:
            msg = f"replica index {raw!r}: expected an integer >= 0 or 'hostname'"
            raise ConfigError(msg) from None
        if index < 0:
            msg = f"replica index {index} must be >= 0"
            raise ConfigError(msg)
    return index * cfg.sites


def plan(cfg: SimConfig, environ: Mapping[str, str] | None = None) -> Plan:
    environ = os.environ if environ is None else environ
    try:
        tz = ZoneInfo(cfg.site_tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        msg = f"site time zone {cfg.site_tz!r} is unknown"
        raise ConfigError(msg) from exc
    start = parse_instant(cfg.start, tz, "--start")
    try:
        timeline = Timeline(start, tz)
    except ValueError as exc:
        raise ConfigError(f"--start: {exc}") from exc
    stop: int | None = cfg.steps + 1 if cfg.steps else None  # step 0 is the start instant itself
    if cfg.until.strip():
        until = parse_instant(cfg.until, tz, "--until")
        if until <= start:
            msg = f"--until {cfg.until!r} is not after --start {cfg.start!r}"
            raise ConfigError(msg)
        last = math.floor((until - start).total_seconds() / STEP_S)
        stop = last + 1 if stop is None else min(stop, last + 1)
    speed = cfg.speed.strip().lower()
    if speed == "max":
        step_seconds = 0.0
    else:
        try:
            factor = float(speed.rstrip("x"))
        except ValueError:
            msg = f"--speed {cfg.speed!r}: expected a number (simulated seconds per real second) or 'max'"
            raise ConfigError(msg) from None
        if not (math.isfinite(factor) and factor > 0):
            msg = f"--speed {cfg.speed!r} must be a positive number or 'max'"
            raise ConfigError(msg)
        step_seconds = STEP_S / factor
    offset = replica_offset(cfg, environ)
    if not cfg.topic_prefix.strip():
        msg = "--topic-prefix must not be empty"
        raise ConfigError(msg)
    from iotcommon.topics import Topics

    site_numbers = list(range(offset + 1, offset + cfg.sites + 1))
    zones = SiteZones.from_settings(cfg.site_tz, cfg.site_zones)
    return Plan(timeline, site_numbers, stop, step_seconds, parse_rules(cfg.late), Topics(cfg.topic_prefix).readings,
                zone_groups(start, site_numbers, zones))
