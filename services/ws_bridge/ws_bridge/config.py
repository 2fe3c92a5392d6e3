"""The bridge's settings: one frozen dataclass read by iotcommon.config (flag > env var > default)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from iotcommon.config import setting
from iotcommon.errors import ConfigError
from iotcommon.logs import log_format_setting, log_level_setting
from iotcommon.topics import Topics
from iotcommon.zones import SiteZones
from ws_bridge.origins import parse_allowed_origins

DESCRIPTION = (
    "iotpipe websocket/HTTP bridge: tails the stream job's output topics (raw readings uncommitted, de-duplicated; "
    "the rest read_committed) and pushes them to websocket "
    "clients, serves history and range queries from HBase, and the built-in live dashboard at /."
)


@dataclass(frozen=True)
class BridgeConfig:
    host: str = setting("127.0.0.1", "address to bind", env="IOTPIPE_BRIDGE_HOST")
    port: int = setting(8765, "TCP port to bind (0 = any free port)", env="IOTPIPE_BRIDGE_PORT", minimum=0,
                        maximum=65535)
    kafka_bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers", env="IOTPIPE_KAFKA_BOOTSTRAP")
    topic_prefix: str = setting("iotpipe", "prefix of every topic", env="IOTPIPE_TOPIC_PREFIX")
    hbase_host: str = setting("127.0.0.1", "HBase Thrift1 host", env="IOTPIPE_HBASE_HOST")
    hbase_port: int = setting(9090, "HBase Thrift1 port", env="IOTPIPE_HBASE_PORT", minimum=1, maximum=65535)
    table_prefix: str = setting("iotpipe", "prefix of the pipeline's HBase tables", env="IOTPIPE_TABLE_PREFIX")
    site_tz: str = setting("Europe/Athens", "sites' default time zone (local day of aggregates)",
                           env="IOTPIPE_SITE_TZ")
    site_zones: str = setting("", "per-site time zones, site=Area/City pairs separated by commas (empty: every site "
                              "in IOTPIPE_SITE_TZ)", env="IOTPIPE_SITE_ZONES")
    token: str = setting("", "bearer token required on the websocket and HTTP APIs (empty = none)",
                         env="IOTPIPE_BRIDGE_TOKEN", secret=True)
    auth: str = setting("auto", "auto: require the token when binding beyond loopback; on: always; off: never",
                        env="IOTPIPE_BRIDGE_AUTH", choices=("auto", "on", "off"))
    allowed_origins: str = setting("", "browser origins allowed to open /ws besides the bridge's own (comma-separated, "
                                   "e.g. https://dash.example.com; * = any origin)",
                                   env="IOTPIPE_BRIDGE_ALLOWED_ORIGINS")
    ticket_ttl_s: int = setting(30, "lifetime of a single-use websocket ticket (POST /api/v1/ws-ticket), seconds",
                                env="IOTPIPE_BRIDGE_TICKET_TTL_S", minimum=1, maximum=600)
    max_connections: int = setting(1000, "websocket connections accepted at once (more get close code 1013)",
                                   env="IOTPIPE_BRIDGE_MAX_CONNECTIONS", minimum=1)
    max_subscriptions: int = setting(32, "subscriptions per connection", env="IOTPIPE_BRIDGE_MAX_SUBSCRIPTIONS",
                                     minimum=1)
    queue_records: int = setting(20000, "records buffered per client before the oldest are dropped",
                                 env="IOTPIPE_BRIDGE_QUEUE_RECORDS", minimum=1)
    heartbeat_s: float = setting(10.0, "seconds between heartbeat frames (and websocket pings)",
                                 env="IOTPIPE_BRIDGE_HEARTBEAT_S", minimum=0.05)
    send_timeout_s: float = setting(30.0, "a client whose socket accepts nothing for this long is closed (1008)",
                                    env="IOTPIPE_BRIDGE_SEND_TIMEOUT_S", minimum=0.05)
    history_limit: int = setting(20000, "most rows one history request or HTTP query returns",
                                 env="IOTPIPE_BRIDGE_HISTORY_LIMIT", minimum=1)
    max_sites: int = setting(50, "most sites one HTTP query or history subscription names",
                             env="IOTPIPE_BRIDGE_MAX_SITES", minimum=1)
    max_range_days: int = setting(400, "longest time range (to - from) of one HTTP query, days",
                                  env="IOTPIPE_BRIDGE_MAX_RANGE_DAYS", minimum=1)
    max_response_bytes: int = setting(16 << 20, "most bytes of stored messages one HTTP query or history request "
                                      "reads (and of one HTTP response)", env="IOTPIPE_BRIDGE_MAX_RESPONSE_BYTES",
                                      minimum=1024)
    deadletter_scan: int = setting(20000, "most dead-letter rows one query scans (they are keyed by source offset, "
                                   "not by site or time)", env="IOTPIPE_BRIDGE_DEADLETTER_SCAN", minimum=1)
    consumer_group: str = setting("", "Kafka group id (only a label: partitions are assigned manually from the end; "
                                  "empty = unique per process)", env="IOTPIPE_BRIDGE_CONSUMER_GROUP")
    live_raw: str = setting("uncommitted", "live path of raw readings: uncommitted = read_uncommitted as soon as the "
                            "stream job sends them, a replay after an aborted transaction dropped by identity; "
                            "committed = read_committed, shown at the job's next checkpoint (history and storage are "
                            "exactly once either way)", env="IOTPIPE_BRIDGE_LIVE_RAW",
                            choices=("uncommitted", "committed"))
    live_dedup: int = setting(200_000, "raw reading identities the uncommitted live path remembers to drop replays "
                              "(at least the readings of a few checkpoint intervals)", env="IOTPIPE_BRIDGE_LIVE_DEDUP",
                              minimum=1)
    sync_group: str = setting("", "the sync workers' Kafka consumer group, as they set it (empty = '<topic prefix>."
                              "hbase-sync'): at start the bridge reads again what they have not stored in HBase yet, "
                              "for history-first clients", env="IOTPIPE_SYNC_GROUP")
    batch_wait_ms: int = setting(50, "how long the Kafka tail waits to fill a batch (ms)",
                                 env="IOTPIPE_BRIDGE_BATCH_WAIT_MS", minimum=1, maximum=1000)
    log_level: str = log_level_setting()
    log_format: str = log_format_setting()

    @property
    def auth_required(self) -> bool:
        """Whether requests must carry the bearer token."""
        if self.auth == "on":
            return True
        if self.auth == "off":
            return False
        return bool(self.token) or not is_loopback(self.host)

    @property
    def sync_group_id(self) -> str:
        return self.sync_group or Topics(self.topic_prefix).sync_group

    @property
    def zones(self) -> SiteZones:
        """Every site's zone (IOTPIPE_SITE_TZ + IOTPIPE_SITE_ZONES); ConfigError when invalid."""
        return SiteZones.from_settings(self.site_tz, self.site_zones)

    @property
    def origins(self) -> frozenset[str]:
        """The allowed origins besides the bridge's own, normalised; ConfigError when one is not an origin."""
        return parse_allowed_origins(self.allowed_origins)

    def check(self) -> BridgeConfig:
        """Cross-field rules; raises ConfigError."""
        self.zones  # noqa: B018  (validates)
        self.origins  # noqa: B018
        if self.auth_required and not self.token:
            why = "--auth on" if self.auth == "on" else f"binding to {self.host} (beyond loopback)"
            msg = (f"{why} requires a bearer token: set IOTPIPE_BRIDGE_TOKEN (or --token), "
                   "or pass --auth off to serve without authentication")
            raise ConfigError(msg)
        return self


def is_loopback(host: str) -> bool:
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
