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
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from pyflink.common import Configuration, Row, Types
from pyflink.datastream import KeyedProcessFunction, RuntimeContext, StreamExecutionEnvironment
from pyflink.datastream.state import MapStateDescriptor, ValueStateDescriptor
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, TableResult
from pyflink.table.udf import udtf

from stream_job import sql
from stream_job.config import StreamJobConfig
from stream_job.core import DayAggregator, ts_ms_of
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


class _SiteStore:
    """core.Store of one site inside a bucket's PyFlink MapState (keys prefixed with the site)."""

    def __init__(self, state: Any, site: str) -> None:
        self.state = state
        self.prefix = site + SEP

    def get(self, key: str) -> Any:
        return self.state.get(self.prefix + key)

    def put(self, key: str, value: Any) -> None:
        self.state.put(self.prefix + key, value)

    def remove(self, key: str) -> None:
        self.state.remove(self.prefix + key)

    def all_keys(self) -> Iterable[str]:
        n = len(self.prefix)
        return [k[n:] for k in list(self.state.keys()) if k.startswith(self.prefix)]


class DailyAggregates(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by bucket (a few sites each): dedup, day state, first emission at the day's end, revisions, late readings.

    Input rows carry a batch of readings 'site,sensor,ts,value,seq;...' (one event-time window of one bucket, or a
    single out-of-order reading).
    """

    def __init__(self, tz: str, lateness_ms: int) -> None:
        self.tz = tz
        self.lateness_ms = lateness_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        descriptor = MapStateDescriptor("days", Types.STRING(), Types.PICKLED_BYTE_ARRAY())
        self.state = runtime_context.get_map_state(descriptor)
        self.sites = runtime_context.get_state(ValueStateDescriptor("sites", Types.PICKLED_BYTE_ARRAY()))
        self.core = DayAggregator(ZoneInfo(self.tz), self.lateness_ms)
        self.stores: dict[str, _SiteStore] = {}
        self.ts_cache: dict[str, int] = {}

    def _store(self, site: str) -> _SiteStore:
        store = self.stores.get(site)
        if store is None:
            store = self.stores[site] = _SiteStore(self.state, site)
        return store

    def _ts_ms(self, ts: str) -> int:
        ms = self.ts_cache.get(ts)
        if ms is None:
            if len(self.ts_cache) > 200_000:
                self.ts_cache.clear()
            ms = self.ts_cache[ts] = ts_ms_of(ts)
        return ms

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[Row]:
        timers = ctx.timer_service()
        watermark = timers.current_watermark()
        register: set[int] = set()
        on_reading = self.core.on_reading
        sites: set[str] = self.sites.value() or set()
        known = len(sites)
        for item in value.batch.split(";"):
            site, sensor, ts, val, seq = item.split(",")
            sites.add(site)
            out, new_timers = on_reading(self._store(site), site, sensor, ts, self._ts_ms(ts), float(val), int(seq),
                                         watermark)
            register.update(new_timers)
            for o in out:
                yield Row(o.topic, o.key, o.value)
        if len(sites) != known:
            self.sites.update(sites)
        for ts_timer in register:
            timers.register_event_time_timer(ts_timer)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[Row]:
        for site in sorted(self.sites.value() or ()):
            for item in self.core.on_timer(self._store(site), site, timestamp):
                yield Row(item.topic, item.key, item.value)


def flink_configuration(config: StreamJobConfig, checkpoints: str, restore_from: str | None,
                        jars: list[Path]) -> Configuration:
    """Flink settings of the job; `checkpoints` and `restore_from` are URIs (file:///..., s3://...)."""
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
    if jars:
        values["pipeline.jars"] = ";".join(jar.absolute().as_uri() for jar in jars)
    if restore_from is not None:
        values["execution.state-recovery.path"] = restore_from
    for pair in filter(None, (p.strip() for p in config.flink_options.split(";"))):
        key, _, value = pair.partition("=")
        values[key.strip()] = value.strip()
    for key, value in values.items():
        conf.set_string(key, value)
    return conf


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
               .watermark("rt", "SOURCE_WATERMARK()").build())
    t_env.create_temporary_view("readings", t_env.from_data_stream(scanned, rowtime))
    for statement in (sql.classified_view(config), sql.fast_valid_view(), sql.slow_view(config), sql.valid_view()):
        t_env.execute_sql(statement)

    t_env.execute_sql(sql.routed_view())
    t_env.execute_sql(sql.on_time_view())
    to_python = t_env.sql_query(f"{sql.batched_query(config.batch_window_min)}\nUNION ALL\n{sql.behind_query()}")
    emitted = (
        t_env.to_data_stream(to_python)
        .key_by(lambda row: row.bucket, key_type=Types.STRING())
        .process(DailyAggregates(config.site_tz, config.lateness_ms),
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
