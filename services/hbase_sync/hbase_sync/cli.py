"""``python -m hbase_sync``: the Kafka -> HBase sync worker of one pipeline."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from collections.abc import Sequence

from confluent_kafka import Consumer

from hbase_sync.backoff import Backoff
from hbase_sync.batching import BatchPolicy
from hbase_sync.config import SyncConfig
from hbase_sync.mapping import Mapper
from hbase_sync.metrics import Health, SyncMetrics, serve, stop_server
from hbase_sync.store import HBaseStore, ShardedStore
from hbase_sync.worker import Worker
from iotcommon import logs
from iotcommon.config import describe, load
from iotcommon.errors import ConfigError, ServiceUnavailable
from iotcommon.shutdown import stop_on_signals

log = logging.getLogger("hbase_sync")

DESCRIPTION = """\
Copies the stream job's output topics (<prefix>.raw, .aggregates, .late, .deadletter; read_committed) into the
pipeline's HBase tables <table prefix>_{raw,aggregates,late,deadletters}. Offsets are committed only after the rows
are written; run more replicas with the same group to split the partitions. HTTP: /healthz, /readyz, /metrics."""


def consumer_settings(config: SyncConfig, metrics: SyncMetrics) -> dict[str, object]:
    return {
        "bootstrap.servers": config.kafka_bootstrap,
        "group.id": config.group_id,
        "client.id": f"hbase-sync-{socket.gethostname()}-{os.getpid()}",
        "enable.auto.commit": False,  # committed by the worker, after the write
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",  # the stream job writes transactionally
        # fewer, fuller fetches under load (a fetch per handful of rows costs Kafka more than the rows); a commit of
        # the stream job makes a burst visible at once, so this adds at most 100 ms (docs/performance.md, "Fetch sizes")
        "fetch.min.bytes": 65_536,
        "fetch.wait.max.ms": 100,
        "partition.assignment.strategy": config.assignment,
        "session.timeout.ms": config.session_timeout_ms,
        "topic.metadata.refresh.interval.ms": 10_000,  # notice topics created after the start
        "statistics.interval.ms": 5_000,
        "stats_cb": metrics.observe_stats,
        "error_cb": lambda err: log.warning("Kafka: %s", err),
        **({"debug": config.kafka_debug} if config.kafka_debug else {}),
    }


def wait_for_hbase(store: ShardedStore, backoff: Backoff, stop: threading.Event, health: Health) -> bool:
    """Connect and create missing tables, retrying until it works or we are asked to stop."""
    attempt = 0
    while not stop.is_set():
        try:
            store.check()
            return True
        except ServiceUnavailable as exc:
            attempt += 1
            delay = backoff.delay(attempt)
            health.tick("starting", f"waiting for HBase: {exc}")
            log.warning("HBase not reachable yet (%s); retrying in %.1f s", exc, delay)
            stop.wait(delay)
    return False


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load(SyncConfig, sys.argv[1:] if argv is None else argv, os.environ, prog="python -m hbase_sync",
                      description=DESCRIPTION)
    except ConfigError as exc:
        print(f"hbase-sync: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_level, config.log_format)
    log.info("starting with %s", describe(config))

    stop = stop_on_signals(lambda name: log.info("%s received: flushing, committing and leaving the group", name))

    metrics, health = SyncMetrics(), Health()
    server = serve(config.http_host, config.http_port, metrics, health)
    log.info("http: /healthz /readyz /metrics on %s:%d", *server.server_address[:2])
    backoff = Backoff(config.backoff_ms / 1000, config.backoff_max_ms / 1000)
    store = ShardedStore([
        # the first connection creates missing tables and checks TTLs; the others only need the tables to exist
        HBaseStore(config.hbase_host, config.hbase_port, config.table_prefix, timeout_ms=config.hbase_timeout_ms,
                   transport=config.hbase_transport, protocol=config.hbase_protocol,
                   ttls=config.ttls if i == 0 else None, create_tables=config.create_tables and i == 0)
        for i in range(config.writers)
    ])
    try:
        if not wait_for_hbase(store, backoff, stop, health):
            return 0
        log.info("HBase %s:%d ready; tables %s_{raw,aggregates,late,deadletters}", config.hbase_host,
                 config.hbase_port, config.table_prefix)
        settings = consumer_settings(config, metrics)
        worker = Worker(Consumer(settings), store, Mapper(config.topics),
                        BatchPolicy(config.batch_size, config.batch_ms / 1000), backoff, retries=config.retries,
                        stop=stop, metrics=metrics, health=health, join_timeout_s=config.join_timeout_s,
                        new_consumer=lambda: Consumer(settings))
        worker.run()
    finally:
        store.close()
        stop_server(server)
    return 0
