"""Settings of the sync worker: env var (documented default) < --flag. Shared names come from docs/development.md."""

from __future__ import annotations

from dataclasses import dataclass

from iotcommon.config import setting
from iotcommon.logs import log_format_setting, log_level_setting
from iotcommon.topics import DEFAULT_PREFIX, Topics


@dataclass(frozen=True)
class SyncConfig:
    kafka_bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers", env="IOTPIPE_KAFKA_BOOTSTRAP")
    topic_prefix: str = setting(DEFAULT_PREFIX, "prefix of the pipeline's topics", env="IOTPIPE_TOPIC_PREFIX")
    hbase_host: str = setting("127.0.0.1", "HBase Thrift1 server host", env="IOTPIPE_HBASE_HOST")
    hbase_port: int = setting(9090, "HBase Thrift1 server port", env="IOTPIPE_HBASE_PORT", minimum=1, maximum=65535)
    hbase_transport: str = setting("buffered", "Thrift transport; must match the server (-threadpool: buffered; "
                                   "-hsha/-nonblocking/-threadedselector or -f: framed)", env="IOTPIPE_HBASE_TRANSPORT",
                                   choices=("buffered", "framed"))
    hbase_protocol: str = setting("binary", "Thrift protocol; compact if the server runs with -c",
                                  env="IOTPIPE_HBASE_PROTOCOL", choices=("binary", "compact"))
    table_prefix: str = setting("iotpipe", "prefix of the pipeline's HBase tables", env="IOTPIPE_TABLE_PREFIX")
    log_level: str = log_level_setting()
    log_format: str = log_format_setting()
    group: str = setting("", "Kafka consumer group; empty = '<topic prefix>.hbase-sync'", env="IOTPIPE_SYNC_GROUP")
    batch_size: int = setting(5000, "rows per HBase flush (size bound of a batch)", env="IOTPIPE_SYNC_BATCH_SIZE",
                              minimum=1, maximum=1_000_000)
    batch_ms: int = setting(500, "longest a row waits for a busy writer (a free writer takes a batch at once)",
                            env="IOTPIPE_SYNC_BATCH_MS", minimum=1)
    writers: int = setting(2, "Thrift connections one batch is written over in parallel (in shards of at least 500 "
                           "rows: a smaller batch is one call)", env="IOTPIPE_SYNC_WRITERS", minimum=1, maximum=16)
    retries: int = setting(5, "write retries (exponential backoff) before HBase is reported unavailable (/readyz "
                           "503); when stopping, the retries after which unwritten rows are left uncommitted",
                           env="IOTPIPE_SYNC_RETRIES", minimum=0)
    backoff_ms: int = setting(200, "first retry delay", env="IOTPIPE_SYNC_BACKOFF_MS", minimum=1)
    backoff_max_ms: int = setting(10_000, "longest retry delay, also the probe interval while paused",
                                  env="IOTPIPE_SYNC_BACKOFF_MAX_MS", minimum=1)
    hbase_timeout_ms: int = setting(20_000, "Thrift socket timeout: a slower HBase call counts as a failure",
                                    env="IOTPIPE_SYNC_HBASE_TIMEOUT_MS", minimum=100)
    assignment: str = setting("roundrobin", "partition assignment strategy of the group; roundrobin spreads every "
                              "topic's partitions over the replicas", env="IOTPIPE_SYNC_ASSIGNMENT",
                              choices=("roundrobin", "range", "cooperative-sticky"))
    session_timeout_ms: int = setting(45_000, "Kafka group session timeout: how soon a dead worker's partitions move",
                                      env="IOTPIPE_SYNC_SESSION_TIMEOUT_MS", minimum=1000)
    join_timeout_s: int = setting(120, "seconds a consumer may go without being let into its group (no assignment "
                                  "callback) before it is closed and made anew; longer than a normal rebalance, which "
                                  "waits for a dead member's session timeout; 0 = never",
                                  env="IOTPIPE_SYNC_JOIN_TIMEOUT_S", minimum=0)
    kafka_debug: str = setting("", "librdkafka debug contexts logged to stderr, e.g. cgrp,consumer; empty = none",
                               env="IOTPIPE_SYNC_KAFKA_DEBUG")
    create_tables: bool = setting(True, "create missing tables at start (never drops or alters existing ones)",
                                  env="IOTPIPE_SYNC_CREATE_TABLES")
    ttl_raw: int = setting(0, "TTL in seconds of the raw table; 0 = keep forever", env="IOTPIPE_SYNC_TTL_RAW",
                           minimum=0)
    ttl_aggregates: int = setting(0, "TTL in seconds of the aggregates table; 0 = keep forever",
                                  env="IOTPIPE_SYNC_TTL_AGGREGATES", minimum=0)
    ttl_late: int = setting(0, "TTL in seconds of the late table; 0 = keep forever", env="IOTPIPE_SYNC_TTL_LATE",
                            minimum=0)
    ttl_deadletters: int = setting(0, "TTL in seconds of the deadletters table; 0 = keep forever",
                                   env="IOTPIPE_SYNC_TTL_DEADLETTERS", minimum=0)
    http_host: str = setting("0.0.0.0", "address of the /healthz and /metrics server", env="IOTPIPE_SYNC_HTTP_HOST")
    http_port: int = setting(9464, "port of the /healthz and /metrics server; 0 = any free port",
                             env="IOTPIPE_SYNC_HTTP_PORT", minimum=0, maximum=65535)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def group_id(self) -> str:
        return self.group or Topics(self.topic_prefix).sync_group

    @property
    def ttls(self) -> dict[str, int]:
        """Seconds per table (0 = forever)."""
        return {"raw": self.ttl_raw, "aggregates": self.ttl_aggregates, "late": self.ttl_late,
                "deadletters": self.ttl_deadletters}
