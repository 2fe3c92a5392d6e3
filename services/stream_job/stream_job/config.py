"""Settings of the stream job (iotcommon.config: flag > env var > default). Pure: importable without PyFlink."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from iotcommon.config import load, setting
from iotcommon.days import DEFAULT_TZ
from iotcommon.errors import ConfigError
from iotcommon.limits import DEFAULT_TS_MAX, DEFAULT_TS_MIN, Limits
from iotcommon.logs import log_format_setting, log_level_setting
from iotcommon.topics import DEFAULT_PREFIX
from iotcommon.zones import SiteZones

_KAFKA_KEY = re.compile(r"[a-z][a-z0-9]*([._-][a-z0-9]+)*", re.ASCII)  # e.g. sasl.jaas.config

CONNECTOR = "org.apache.flink:flink-sql-connector-kafka:5.0.0-2.2"
CONNECTOR_JAR = "flink-sql-connector-kafka-5.0.0-2.2.jar"
STARTUP_MODES = {"earliest": "earliest-offset", "latest": "latest-offset", "group-offsets": "group-offsets"}


@dataclass(frozen=True)
class StreamJobConfig:
    bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers", env="IOTPIPE_KAFKA_BOOTSTRAP")
    topic_prefix: str = setting(DEFAULT_PREFIX, "prefix of every topic (<prefix>.readings in, .raw/.aggregates/"
                                ".late/.deadletter out)", env="IOTPIPE_TOPIC_PREFIX")
    site_tz: str = setting(DEFAULT_TZ, "default time zone of the sites: defines their local day",
                           env="IOTPIPE_SITE_TZ")
    site_zones: str = setting("", "per-site zones 'site=Area/City,site2=Area/City' (others use IOTPIPE_SITE_TZ)",
                              env="IOTPIPE_SITE_ZONES")
    parallelism: int = setting(1, "parallelism of every operator", env="IOTPIPE_FLINK_PARALLELISM", minimum=1,
                               maximum=64)
    lateness_s: int = setting(172800, "allowed lateness after a day's end, seconds (default 2 days)",
                              env="IOTPIPE_LATENESS_S", minimum=0)
    watermark_delay_ms: int = setting(1000, "watermark = max event time seen - this delay (bounded out-of-orderness)",
                                      env="IOTPIPE_WATERMARK_DELAY_MS", minimum=0)
    idle_timeout_ms: int = setting(30000, "idle limit: a readings partition without data for this long stops "
                                   "holding the watermark back, and a day whose end a site's own readings passed is "
                                   "first emitted at the latest about this long (processing time) after; 0 = off "
                                   "(an empty or silent partition then holds every first emission back)",
                                   env="IOTPIPE_IDLE_TIMEOUT_MS", minimum=0)
    max_future_s: int = setting(86400, "a reading stamped more than this after its Kafka record's timestamp does not "
                                "move its site's clock (a device clock far in the future makes nothing late)",
                                env="IOTPIPE_MAX_FUTURE_S", minimum=0, maximum=2**31 - 1)
    site_idle_s: int = setting(0, "a site without readings for this long (processing time) loses all its state "
                               "(open days, clock); 0 = the allowed lateness", env="IOTPIPE_SITE_IDLE_S", minimum=0)
    batch_window_min: int = setting(60, "on-time readings reach the Python day logic in event-time batches of this "
                                    "many minutes (the zone's UTC offsets must be multiples of it)",
                                    env="IOTPIPE_BATCH_WINDOW_MIN", minimum=1, maximum=1440)
    checkpoint_dir: str = setting("", "checkpoint directory (path or URI); default $IOTPIPE_HOME/stream_job/"
                                  "checkpoints/<prefix>", env="IOTPIPE_CHECKPOINT_DIR")
    checkpoint_interval_ms: int = setting(2000, "checkpoint interval; transactional output becomes visible to "
                                          "read_committed consumers at each checkpoint",
                                          env="IOTPIPE_CHECKPOINT_INTERVAL_MS", minimum=100)
    restore: str = setting("latest", "'latest' = resume from the newest retained checkpoint in checkpoint-dir if any, "
                           "'none' = start fresh, or a checkpoint path; a checkpoint the job cannot restore stops it "
                           "(exit 2, with what to do)", env="IOTPIPE_RESTORE")
    group_id: str = setting("", "Kafka consumer group (default iotpipe-stream-job-<prefix>)", env="IOTPIPE_GROUP_ID")
    starting_offsets: str = setting("group-offsets", "where to start without a checkpoint: group-offsets (falls "
                                    "back to earliest), earliest or latest", env="IOTPIPE_STARTING_OFFSETS",
                                    choices=tuple(STARTUP_MODES))
    bounded: bool = setting(False, "stop at the readings' end offsets seen at start (tests, backfills); the final "
                            "watermark then closes every day", env="IOTPIPE_BOUNDED")
    transactional_id_prefix: str = setting("", "prefix of the Kafka transactional ids (default iotpipe-sj-<prefix>); "
                                           "must be unique per running job", env="IOTPIPE_TRANSACTIONAL_ID_PREFIX")
    connector_jar: str = setting("", "path of the Kafka SQL connector jar (default: found in $IOTPIPE_CACHE or "
                                 "$FLINK_HOME/lib)", env="IOTPIPE_FLINK_CONNECTOR_JAR")
    udf_jar: str = setting("", "path of the job's Java functions jar (default: $FLINK_HOME/lib/iotpipe-stream-udf.jar, "
                           "else built once with javac into $IOTPIPE_CACHE/jars)", env="IOTPIPE_FLINK_UDF_JAR")
    python_mode: str = setting("process", "PyFlink execution mode of the Python functions", env="IOTPIPE_PYTHON_MODE",
                               choices=("process", "thread"))
    flink_options: str = setting("", "extra Flink settings 'key=value;key=value' (e.g. python.profile.enabled=true)",
                                 env="IOTPIPE_FLINK_OPTIONS")
    kafka_options: str = setting("", "extra Kafka client properties for every topic the job reads and writes "
                                 "'key=value;key=value' (e.g. security.protocol=SSL); they win over the job's own",
                                 env="IOTPIPE_KAFKA_OPTIONS")
    value_ranges: str = setting("", "plausibility range per sensor 'W1=0:1e6,TH1=-80:120' (bounds inclusive, within "
                                "+-1e18); sensors not named keep their default (docs/validation.md); a reading "
                                "outside goes to the dead-letter topic (out-of-range)", env="IOTPIPE_VALUE_RANGES")
    ts_min: str = setting(DEFAULT_TS_MIN, "event-time window start (exclusive, RFC 3339 UTC); readings at or before "
                          "it are dead letters (out-of-range)", env="IOTPIPE_TS_MIN")
    ts_max: str = setting(DEFAULT_TS_MAX, "event-time window end (inclusive, RFC 3339 UTC, at most "
                          "9000-01-01T00:00:00Z); readings after it are dead letters (out-of-range)",
                          env="IOTPIPE_TS_MAX")
    metrics_port: int = setting(9249, "port of the Prometheus metrics endpoint (Flink's Prometheus reporter, every "
                                "Flink metric and the job's own, docs/stream-job.md); 0 = no endpoint",
                                env="IOTPIPE_METRICS_PORT", minimum=0, maximum=65535)
    log_level: str = log_level_setting()
    log_format: str = log_format_setting()

    @property
    def lateness_ms(self) -> int:
        return self.lateness_s * 1000

    @property
    def limits(self) -> Limits:
        """The plausibility limits (iotcommon.limits); ConfigError when the settings are malformed."""
        return Limits.from_settings(self.value_ranges, self.ts_min, self.ts_max)

    @property
    def site_idle_ms(self) -> int:
        return (self.site_idle_s or self.lateness_s) * 1000

    @property
    def zones(self) -> SiteZones:
        return SiteZones.from_settings(self.site_tz, self.site_zones)

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"iotpipe-stream-job-{self.topic_prefix}"

    @property
    def txn_prefix(self) -> str:
        return self.transactional_id_prefix or f"iotpipe-sj-{self.topic_prefix}"

    @property
    def kafka_properties(self) -> dict[str, str]:
        """IOTPIPE_KAFKA_OPTIONS as a dict; ConfigError names the malformed entry."""
        out = {}
        for pair in filter(None, (p.strip() for p in self.kafka_options.split(";"))):
            key, sep, value = (part.strip() for part in pair.partition("="))
            if not sep or not _KAFKA_KEY.fullmatch(key):
                raise ConfigError(f"IOTPIPE_KAFKA_OPTIONS: {pair!r} is not key=value with a Kafka property name "
                                  "(e.g. security.protocol=SSL)")
            out[key] = value
        return out


def load_config(argv: Sequence[str] | None, environ: Mapping[str, str]) -> StreamJobConfig:
    config = load(StreamJobConfig, argv, environ, prog="python -m stream_job",
                  description="iotpipe stream job: readings -> raw, daily aggregates, late readings, dead letters")
    for zone in config.zones.names():  # ConfigError for an unknown zone or a malformed map
        bad = offsets_not_multiple(zone, config.batch_window_min)
        if bad:
            raise ConfigError(f"IOTPIPE_BATCH_WINDOW_MIN: {config.batch_window_min} min batches would straddle local "
                              f"midnights of {zone} (UTC offsets {bad}); use 15")
    if config.bounded and config.restore not in ("latest", "none"):
        raise ConfigError(BOUNDED_RESTORE)
    config.limits  # noqa: B018 (raises ConfigError for malformed IOTPIPE_VALUE_RANGES / IOTPIPE_TS_MIN / _MAX)
    config.kafka_properties  # noqa: B018 (raises ConfigError for malformed IOTPIPE_KAFKA_OPTIONS)
    return config


BOUNDED_RESTORE = ("--bounded cannot resume from a checkpoint: a restored bounded Kafka source never finishes "
                   "(upstream FLINK-31006 / FLINK-33466). Rerun the backfill from the start (--restore none, a new "
                   "--group-id), or resume without --bounded and stop the job once it has caught up")


def offsets_not_multiple(tz: str, minutes: int) -> list[str]:
    """UTC offsets the zone used in 1990-2060 that are not multiples of `minutes` (days must align with batches)."""
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    zone = ZoneInfo(tz)
    bad = set()
    for year in range(1990, 2061):
        for month in (1, 4, 7, 10):
            offset = datetime(year, month, 1, tzinfo=zone).utcoffset() or timedelta(0)
            if (offset.total_seconds() // 60) % minutes or 1440 % minutes:
                bad.add(str(offset))
    return sorted(bad)


def checkpoint_path(config: StreamJobConfig, environ: Mapping[str, str]) -> Path:
    """Local checkpoint directory (URIs other than file:// are passed to Flink untouched by the caller)."""
    if config.checkpoint_dir:
        raw = config.checkpoint_dir
        return Path(raw.removeprefix("file://"))
    home = Path(environ.get("IOTPIPE_HOME", ".iotpipe")).absolute()
    return home / "stream_job" / "checkpoints" / config.topic_prefix


def configured_jar(configured: str, variable: str) -> Path | None:
    """The jar a setting names (it must exist), or None when the setting is empty."""
    if not configured:
        return None
    path = Path(configured)
    if not path.is_file():
        raise ConfigError(f"{variable}: no such file {path}")
    return path


def in_flink_lib(jar_name: str, environ: Mapping[str, str]) -> bool:
    """Whether the jar already sits on Flink's classpath ($FLINK_HOME/lib, as in the image)."""
    flink_home = environ.get("FLINK_HOME")
    return bool(flink_home) and (Path(str(flink_home)) / "lib" / jar_name).is_file()


def cache_dir(environ: Mapping[str, str]) -> Path:
    return Path(environ.get("IOTPIPE_CACHE", os.path.expanduser("~/.cache/iotpipe")))


def find_connector_jar(config: StreamJobConfig, environ: Mapping[str, str]) -> Path | None:
    """The connector jar to add to the job, or None when it is already on Flink's classpath ($FLINK_HOME/lib)."""
    explicit = configured_jar(config.connector_jar, "IOTPIPE_FLINK_CONNECTOR_JAR")
    if explicit is not None:
        return explicit
    if in_flink_lib(CONNECTOR_JAR, environ):
        return None
    cache = cache_dir(environ)
    for candidate in (cache / "m2/org/apache/flink/flink-sql-connector-kafka/5.0.0-2.2" / CONNECTOR_JAR,
                      cache / "jars" / CONNECTOR_JAR):
        if candidate.is_file():
            return candidate
    raise ConfigError(f"cannot find {CONNECTOR_JAR}: set IOTPIPE_FLINK_CONNECTOR_JAR (mvn dependency:copy "
                      f"-Dartifact={CONNECTOR})")


def latest_checkpoint(root: Path) -> Path | None:
    """The newest completed checkpoint (a chk-N directory with _metadata) under root/<job-id>/."""
    best: tuple[float, Path] | None = None
    if not root.is_dir():
        return None
    for meta in root.glob("*/chk-*/_metadata"):
        stamp = meta.stat().st_mtime
        if best is None or stamp > best[0]:
            best = (stamp, meta.parent)
    return best[1] if best else None


# the way out of a checkpoint the job cannot use, and what it costs (failure_hint, restore_guard)
WITHOUT_THE_CHECKPOINT = ("Start without it: --restore none (IOTPIPE_RESTORE=none), or move the checkpoint directory "
                          "away. The job then resumes from the consumer group's committed offsets, without the open "
                          "days' state.")


def failure_hint(error: str, restore_from: str | None) -> str | None:
    """What to do about a job failure the user can fix: a checkpoint written by another version of the job."""
    if restore_from and "Cannot map checkpoint/savepoint state" in error:
        return (f"the checkpoint {restore_from} was written by a different version of the job (its operators do not "
                f"match this one). {WITHOUT_THE_CHECKPOINT}")
    return None

