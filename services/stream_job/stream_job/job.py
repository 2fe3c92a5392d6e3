"""The PyFlink job: wires the SQL of ``stream_job.sql`` and the keyed day aggregation of ``stream_job.core``.

Topology (one Flink job):

    Kafka <prefix>.readings (SQL source: raw key/value bytes + topic/partition/offset, watermark on the event time)
      -> one scan shared by all queries (to_data_stream / from_data_stream right after the source)
      -> classified: canonical form parsed by the Java functions (JVM)
           fast  -> fields -------------------------------------------------\\
           slow  -> Python table function classify (iotcommon validator) --+-> valid -> INSERT <prefix>.raw
                                                   \\-> dead letters -> INSERT <prefix>.deadletter
      valid -> DataStream keyed by site bucket -> Python KeyedProcessFunction (state + event-time timers)
            -> aggregates -> INSERT <prefix>.aggregates ; late -> INSERT <prefix>.late
    All sinks are transactional Kafka sinks (exactly-once, committed on checkpoints).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment, TimeDomain
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, TableResult
from pyflink.table.udf import udtf

from iotcommon.zones import SiteZones
from stream_job import sql
from stream_job.config import StreamJobConfig
from stream_job.core import DayAggregator
from stream_job.metrics import DayMetrics, reporter_on_classpath, reporter_settings
from stream_job.udf_jar import FUNCTIONS
from stream_job.validate import classify as classify_message
from stream_job.validate import now_iso

log = logging.getLogger("stream_job")

VERDICT_FIELDS = ["ok", "dl", "site", "sensor", "ts", "ts_ms", "val", "seq"]
VERDICT_TYPES = [DataTypes.BOOLEAN(), DataTypes.STRING(), DataTypes.STRING(), DataTypes.STRING(), DataTypes.STRING(),
                 DataTypes.BIGINT(), DataTypes.DOUBLE(), DataTypes.BIGINT()]


# A table function, not a scalar one: the planner evaluates a Python scalar function in a calc before that calc's
# filter, i.e. on every message; the left side of a LATERAL TABLE join is filtered first (only slow-path rows).
@udtf(result_types=VERDICT_TYPES)  # type: ignore[untyped-decorator]
def classify(key: bytes | None, value: bytes | None, topic: str, partition: int, offset: int,
             limits: str) -> Iterator[tuple[Any, ...]]:
    yield tuple(classify_message(key, value, topic, partition, offset, now_iso(), limits))


SEP = "\x1f"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(text: str) -> int:
    """Epoch milliseconds (floored) of a reading's ``ts`` (RFC 3339 with Z) or of a clock as the SQL writes it
    (``2020-10-05 21:15:00.000``: UTC, the job's table.local-time-zone)."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return (parsed - _EPOCH) // timedelta(milliseconds=1)


_MISSING = object()


class _SiteStore:
    """core.Store of one site inside a bucket's PyFlink MapState (keys prefixed with the site), with a write-back
    cache that lives for one call of the operator (``flush`` at its end, while the bucket is still the current key).

    The day logic reads and writes the same few entries of a site (``I``, ``Q``, the day's blob) for every reading of
    a batch, and every MapState access goes through several layers of PyFlink's state classes; here it is a dict
    access, and MapState sees one read and one write per entry and batch. State values are never None."""

    def __init__(self, state: Any, site: str) -> None:
        self.state = state
        self.prefix = site + SEP
        self.cache: dict[str, Any] = {}  # key -> value (None: absent), read or written during this call
        self.dirty: set[str] = set()

    def get(self, key: str) -> Any:
        value = self.cache.get(key, _MISSING)
        if value is _MISSING:
            value = self.cache[key] = self.state.get(self.prefix + key)
        return value

    def put(self, key: str, value: Any) -> None:
        self.cache[key] = value
        self.dirty.add(key)

    def remove(self, key: str) -> None:
        self.cache[key] = None
        self.dirty.add(key)

    def all_keys(self) -> Iterable[str]:
        self.flush()
        n = len(self.prefix)
        return [k[n:] for k in list(self.state.keys()) if k.startswith(self.prefix)]

    def flush(self) -> None:
        """Write what changed to the MapState and forget the cache (the next call may have another current key)."""
        for key in self.dirty:
            value = self.cache[key]
            if value is None:
                self.state.remove(self.prefix + key)
            else:
                self.state.put(self.prefix + key, value)
        self.dirty.clear()
        self.cache.clear()


class DailyAggregates(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by bucket (a few sites each): dedup, day state, first emission at the day's end, revisions, late readings.

    Input rows carry a batch of items 'site,sensor,ts,value,seq,clock,partition,sseq;...' (one event-time window of
    one bucket, or a single out-of-order reading, or a marker 'site,,reason,,,clock,partition,sseq' for a dead
    letter). A processing-
    time timer per bucket, every idle limit, closes the days the sites' own clocks have passed and forgets the sites
    idle beyond IOTPIPE_SITE_IDLE_S.
    """

    def __init__(self, zones: SiteZones, lateness_ms: int, idle_ms: int, site_idle_ms: int) -> None:
        self.zones = zones
        self.lateness_ms = lateness_ms
        self.idle_ms = idle_ms
        self.site_idle_ms = site_idle_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        descriptor = MapStateDescriptor("days", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        self.state = runtime_context.get_map_state(descriptor)
        # site -> processing time it was last seen (ms, coarse)
        self.sites = runtime_context.get_state(ValueStateDescriptor("seen", Types.PICKLED_BYTE_ARRAY()))
        self.tick = runtime_context.get_state(ValueStateDescriptor("tick", Types.LONG()))
        self.core = DayAggregator(self.zones, self.lateness_ms)
        self.metrics = DayMetrics(runtime_context.get_metrics_group())
        self.used: dict[str, _SiteStore] = {}  # the sites' stores of the current call, flushed at its end
        self.ts_cache: dict[str, int] = {}

    def _store(self, site: str) -> _SiteStore:
        store = self.used.get(site)
        if store is None:
            store = self.used[site] = _SiteStore(self.state, site)
        return store

    def _flush(self) -> None:
        for store in self.used.values():
            store.flush()
        self.used.clear()

    def _ms(self, text: str) -> int:
        ms = self.ts_cache.get(text)
        if ms is None:
            if len(self.ts_cache) > 200_000:
                self.ts_cache.clear()
            ms = self.ts_cache[text] = epoch_ms(text)
        return ms

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        now = timers.current_processing_time()
        register: set[int] = set()
        on_reading = self.core.on_reading
        sites: dict[str, int] = self.sites.value() or {}
        changed = False
        for item in value.batch.split(";"):
            site, sensor, ts, val, seq, clock, part, sseq = item.split(",")
            if not sensor:  # a marker (ts: the dead letter's reason; empty for a reading of another site)
                if ts:
                    self.metrics.dead_letter(ts)
                if not site or not sseq:
                    continue
            if now - sites.get(site, -TICK_MS) >= TICK_MS // 4:
                sites[site] = now
                changed = True
            store = self._store(site)
            clock_ms = self._ms(clock)
            self.metrics.clock(site, clock_ms)
            if not sensor:
                out = self.core.on_marker(store, site, clock_ms, int(sseq), watermark, int(part))
            else:
                out, new_timers = on_reading(store, site, sensor, ts, self._ms(ts), float(val), int(seq),
                                             clock_ms, int(sseq) if sseq else None, watermark, int(part))
                register.update(new_timers)
            for o in out:
                yield Row(o.topic, o.key, o.value)
        self._flush()
        if changed:
            self.sites.update(sites)
        self._count()
        for ts_timer in register:
            timers.register_event_time_timer(ts_timer)
        if self.tick.value() is None:
            self.tick.update(now + self._tick_ms())
            timers.register_processing_time_timer(now + self._tick_ms())

    def _count(self) -> None:
        self.metrics.add(self.core.counts)

    def _tick_ms(self) -> int:
        return self.idle_ms if self.idle_ms > 0 else TICK_MS

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        sites: dict[str, int] = self.sites.value() or {}
        if ctx.time_domain() == TimeDomain.EVENT_TIME:
            for site in sorted(sites):
                for item in self.core.on_timer(self._store(site), site, timestamp):
                    yield Row(item.topic, item.key, item.value)
            self._flush()
            self._count()
            return
        # processing time: the idle limit
        now = ctx.timer_service().current_processing_time()
        for site in sorted(sites):
            store = self._store(site)
            if now - sites[site] > self.site_idle_ms:
                self.core.forget(store)
                del sites[site]
                self.metrics.forget(site)
                continue
            if self.idle_ms > 0:
                for item in self.core.on_idle(store, site):
                    yield Row(item.topic, item.key, item.value)
        self._flush()
        self.sites.update(sites)
        self._count()
        if sites:
            self.tick.update(now + self._tick_ms())
            ctx.timer_service().register_processing_time_timer(now + self._tick_ms())
        else:
            self.tick.clear()


TICK_MS = 60_000  # how often the bucket looks for idle sites when the idle limit is off; last-seen resolution / 4


def prepare_gateway(config: StreamJobConfig) -> None:
    """Before the first PyFlink call: the Prometheus reporter on the local gateway's classpath (metrics.py)."""
    if config.metrics_port:
        import pyflink

        home = Path(os.environ.get("FLINK_HOME") or pyflink.__path__[0])
        jar = reporter_on_classpath(os.environ, home)
        log.info("metrics: Prometheus endpoint on port %d%s", config.metrics_port,
                 f" (reporter {jar.name} on the gateway's classpath)" if jar else "")


def flink_configuration(config: StreamJobConfig, checkpoints: str, restore_from: str | None,
                        jars: list[Path], rest_port: int | None = None) -> Configuration:
    """Flink settings of the job; `checkpoints` and `restore_from` are URIs (file:///..., s3://...). `rest_port`: the
    local MiniCluster's REST endpoint on that loopback port (the restore guard reads the job's failures there)."""
    conf = Configuration()
    values = {
        "parallelism.default": str(config.parallelism),
        "execution.checkpointing.interval": f"{config.checkpoint_interval_ms} ms",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        "execution.checkpointing.dir": checkpoints,
        "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
        "execution.checkpointing.num-retained": "3",
        "execution.checkpointing.min-pause": "500 ms",
        "table.exec.source.idle-timeout": f"{config.idle_timeout_ms} ms",  # 0 ms = idleness detection off
        # the sites' clocks (OVER state) outlive the day operator's own forgetting (site idle limit) by a margin
        "table.exec.state.ttl": f"{2 * config.site_idle_ms} ms",
        "table.local-time-zone": "UTC",
        "pipeline.name": f"iotpipe-stream-job[{config.topic_prefix}]",
        "pipeline.auto-watermark-interval": "200 ms",
        # LISTAGG batches gain nothing from a local pre-aggregation (same bytes shuffled, copied twice): one phase
        "table.optimizer.agg-phase-strategy": "ONE_PHASE",
        "pipeline.object-reuse": "true",  # chained operators hand rows over without copying (the SQL runtime allows it)
        "python.execution-mode": config.python_mode,
        "python.fn-execution.bundle.size": "100000",
        "python.fn-execution.bundle.time": "1000",  # fewer state commits (each a JVM round trip); <= 1 s latency
        "taskmanager.memory.process.size": "1600m",
        "restart-strategy.type": "fixed-delay",
        "restart-strategy.fixed-delay.attempts": "1000000",
        "restart-strategy.fixed-delay.delay": "2 s",
    }
    values.update(reporter_settings(config.metrics_port))
    if jars:
        values["pipeline.jars"] = ";".join(jar.absolute().as_uri() for jar in jars)
    if restore_from is not None:
        values["execution.state-recovery.path"] = restore_from
    if rest_port is not None:
        values.update({"rest.bind-address": "127.0.0.1", "rest.address": "127.0.0.1", "rest.bind-port": str(rest_port)})
    for pair in filter(None, (p.strip() for p in config.flink_options.split(";"))):
        key, _, value = pair.partition("=")
        values[key.strip()] = value.strip()
    for key, value in values.items():
        conf.set_string(key, value)
    return conf


def cluster_settings() -> dict[str, str]:
    """The Flink configuration of the process the driver runs in ($FLINK_CONF_DIR; on Kubernetes the JobManager's)."""
    from pyflink.java_gateway import get_gateway

    jvm = get_gateway().jvm
    loaded = jvm.org.apache.flink.configuration.GlobalConfiguration.loadConfiguration().toMap()
    return {str(k): str(v) for k, v in loaded.items()}


def build(config: StreamJobConfig, conf: Configuration, python_exe: str) -> TableResult:
    """Declare the whole job and submit it; returns the running statement set's result."""
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_python_executable(python_exe)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("python.executable", python_exe)
    t_env.create_temporary_system_function("classify", classify)
    for name, java_class in FUNCTIONS.items():
        t_env.create_java_temporary_system_function(name, java_class)
    for statement in (sql.source_ddl(config), *sql.sink_ddl(config)):
        t_env.execute_sql(statement)
    # Read the topic once. Every query below is planned on its own (the Python stage sits between a to_data_stream
    # and a from_data_stream), and each would scan the source again; a DataStream round trip right after the source
    # makes them all share one scan. The watermarks and event times travel with the stream.
    scanned = t_env.to_data_stream(t_env.sql_query(sql.scan_query()))
    rowtime = (Schema.new_builder().column_by_metadata("rt", "TIMESTAMP_LTZ(3)", "rowtime")
               .column_by_expression("pt", "PROCTIME()")
               .watermark("rt", "SOURCE_WATERMARK()").build())
    t_env.create_temporary_view("readings", t_env.from_data_stream(scanned, rowtime))
    for statement in (sql.classified_view(config), sql.clocked_view(), sql.fast_valid_view(), sql.slow_view(config),
                      sql.slow_copy_view(config), sql.valid_view()):
        t_env.execute_sql(statement)

    t_env.execute_sql(sql.routed_view())
    t_env.execute_sql(sql.on_time_view())
    to_python = t_env.sql_query(f"{sql.batched_query(config.batch_window_min)}\nUNION ALL\n{sql.behind_query()}")
    emitted = (
        t_env.to_data_stream(to_python)
        .key_by(lambda row: row.bucket, key_type=Types.STRING())
        .process(DailyAggregates(config.zones, config.lateness_ms, config.idle_timeout_ms, config.site_idle_ms),
                 output_type=Types.ROW_NAMED(["topic", "k", "v"],
                                             [Types.STRING(), Types.STRING(), Types.PRIMITIVE_ARRAY(Types.BYTE())]))
        .name("daily-aggregates")
    )
    t_env.create_temporary_view("emitted", t_env.from_data_stream(emitted))

    statements = t_env.create_statement_set()
    for statement in (*sql.inserts(),
                      "INSERT INTO aggregates_sink SELECT k, v FROM emitted WHERE topic = 'aggregates'",
                      "INSERT INTO late_sink SELECT k, v FROM emitted WHERE topic = 'late'"):
        statements.add_insert_sql(statement)
    return statements.execute()
