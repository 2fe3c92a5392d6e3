"""The PyFlink job: wires the SQL of ``stream_job.sql`` and the keyed day aggregation (Java ``DailyAggregates``).

Topology (one Flink job):

    Kafka <prefix>.readings (SQL source: raw key/value bytes + topic/partition/offset, watermark on the event time)
      -> one scan shared by all queries (to_data_stream / from_data_stream right after the source)
      -> classified: canonical form parsed by the Java functions (JVM)
           fast  -> fields -------------------------------------------------\\
           slow  -> Python table function classify (iotcommon validator) --+-> valid -> INSERT <prefix>.raw
                                                   \\-> dead letters -> INSERT <prefix>.deadletter
      valid -> DataStream keyed by site bucket -> Java KeyedProcessFunction DailyAggregates (state + event-time timers)
            -> aggregates -> INSERT <prefix>.aggregates ; late -> INSERT <prefix>.late
    All sinks are transactional Kafka sinks (exactly-once, committed on checkpoints).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyflink.common import Configuration
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.java_gateway import get_gateway
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, TableResult
from pyflink.table.udf import udtf
from pyflink.util.java_utils import add_jars_to_context_class_loader

from stream_job import day_spec, sql
from stream_job.config import StreamJobConfig
from stream_job.metrics import reporter_on_classpath, reporter_settings
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


def daily_aggregates(t_env: StreamTableEnvironment, batches: Any, config: StreamJobConfig, jars: str) -> DataStream:
    """The day operator (Java: ``dev.iotpipe.flink.DailyAggregates``, the port of ``stream_job.core``) on the
    batches' rows (bucket, batch, rt): keyed by bucket, it emits (topic, k, v) rows, aggregates and late readings.
    Built through py4j, so its class must be on the gateway's class loader: the job's jar (``pipeline.jars``) is added
    to it, or it is in ``$FLINK_HOME/lib`` (the image)."""
    uris = [uri for uri in jars.split(";") if uri]
    if uris:
        add_jars_to_context_class_loader(uris)
    operator = get_gateway().jvm.dev.iotpipe.flink.DailyAggregates
    j_batches = t_env._j_tenv.toDataStream(batches._j_table)
    return DataStream(operator.apply(j_batches, day_spec.sensors_text(), day_spec.parts_text(),
                                     day_spec.zones_text(config.zones), config.lateness_ms, config.idle_timeout_ms,
                                     config.site_idle_ms))


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
    emitted = daily_aggregates(t_env, to_python, config, conf.get_string("pipeline.jars", ""))
    t_env.create_temporary_view("emitted", t_env.from_data_stream(emitted))

    statements = t_env.create_statement_set()
    for statement in (*sql.inserts(),
                      "INSERT INTO aggregates_sink SELECT k, v FROM emitted WHERE topic = 'aggregates'",
                      "INSERT INTO late_sink SELECT k, v FROM emitted WHERE topic = 'late'"):
        statements.add_insert_sql(statement)
    return statements.execute()
