"""The Flink SQL of the job, as pure strings (no PyFlink): source, fast-path parsing, sinks.

The hot path stays in the JVM: every reading whose bytes are in the canonical compact form that
``iotcommon.messages.Reading.encode`` writes (key order, no spaces, finite numbers, a known sensor, the sensor's
unit) is recognised and split in one pass by the job's Java functions (``services/stream_job/java``), which get the
grammar from here (CANONICAL, UNITS). Anything else (invalid, or valid but formatted differently) takes the slow path:
a Python table function running ``iotcommon.messages.decode_reading``, the reference validator, so both paths accept
exactly the same messages and the dead-letter reason codes are iotcommon's. The plausibility limits (value range per
sensor, event-time window: ``iotcommon.limits``, docs/validation.md) reach both paths as the same argument string.

The statements are built from configuration values we control (quoted with ``_q``), never from message data.
"""

from __future__ import annotations

from datetime import UTC, datetime

from iotcommon.limits import Limits
from iotcommon.sensors import SENSORS
from iotcommon.topics import Topics
from stream_job.config import STARTUP_MODES, StreamJobConfig

_SENSORS = "|".join(SENSORS)
# any number a Python encoder writes for an in-range value (repr: 1e-07, 5e-324, 1.5e+20); a double beyond the
# sensor's range (or Infinity, from an exponent beyond 308) is refused by the range check in the Java functions
_NUMBER = r"-?(0|[1-9][0-9]{0,20})(\.[0-9]+)?([eE][+-]?[0-9]{1,3})?"
CANONICAL = (
    r'^\{"v":1,"site":"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}","sensor":"(' + _SENSORS + r')",'
    r'"ts":"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z",'
    r'"value":' + _NUMBER + r',"unit":"(C|Wh|l|count)","seq":(0|[1-9][0-9]{0,18})\}$'
)
EPOCH = "TIMESTAMP '1970-01-01 00:00:00'"
# The job's time attribute ``rt`` is a reading's event time minus 1 ms, so that Flink's tumbling windows [start, end)
# over it are (start, end] in event time, like the days (a reading stamped at a window's end belongs to it). The
# legacy group windows the batches use (see ``batched_query``) have no offset. Where the event time itself is
# needed (the clock, ``newest``) the SQL adds the millisecond back (``EVENT_TIME``).
SHIFT = "INTERVAL '0.001' SECOND"
EVENT_TIME = f"(rt + {SHIFT})"
_TEXT = "CAST(v AS STRING)"


def unit_of(sensor_expr: str) -> str:
    """SQL: the unit a sensor's readings must carry."""
    return f"CASE {sensor_expr} " + " ".join(f"WHEN '{n}' THEN '{s.unit}'" for n, s in SENSORS.items()) + " END"


def _q(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


_TS = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?Z"
# A reading-shaped JSON object in any key order / spacing (what other producers, e.g. the simulator, write): one
# "ts" key, "v": 1, a known sensor. Only its event time is taken from it here; validity is still decided by the
# reference validator (slow path).
LOOSE = (
    r'^\s*\{(?=[\s\S]*"v"\s*:\s*1\s*[,}])(?=[\s\S]*"sensor"\s*:\s*"(' + _SENSORS + r')"\s*[,}])'
    r'(?![\s\S]*"ts"\s*:[\s\S]*"ts"\s*:)[\s\S]*\}\s*$'
)
LOOSE_TS = r'"ts"\s*:\s*"(' + _TS + r')"\s*[,}]'
LOOSE_SENSOR = r'"sensor"\s*:\s*"([A-Za-z0-9]+)"'
LOOSE_UNIT = r'"unit"\s*:\s*"([A-Za-z]+)"'


def _to_timestamp(text_expr: str) -> str:
    return f"TRY_CAST(REPLACE(REPLACE({text_expr}, 'T', ' '), 'Z', '') AS TIMESTAMP(3))"


UNITS = ";".join(f"{name}={sensor.unit}" for name, sensor in SENSORS.items())


def grammar(limits: Limits) -> str:
    """SQL: the arguments after ``v`` of the Java functions reading_time and reading_field: the canonical regex, the
    sensor units and the plausibility limits (``Limits.wire``), all defined here in Python."""
    return f"{_q(CANONICAL)}, {_q(UNITS)}, {_q(limits.wire())}"


def _window_sql(limits: Limits, expr: str) -> str:
    """SQL: ``expr`` (a TIMESTAMP(3)) lies in the limits' event-time window (min, max]."""
    low, high = (datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
                 for ms in (limits.ts_min_ms, limits.ts_max_ms))
    return f"{expr} > TIMESTAMP '{low}' AND {expr} <= TIMESTAMP '{high}'"


def rowtime_expr(limits: Limits) -> str:
    """Event time of readings: canonical ones (Java ``reading_time``, one pass), and reading-shaped JSON in any key
    order (the unit must match the sensor); epoch 0 (never moves the watermark) for everything else.

    Without the second case a producer that writes valid readings in another key order never moves the watermark:
    raw copies flow but no day ever closes, so no aggregate is emitted.
    """
    loose = _to_timestamp(f"REGEXP_EXTRACT({_TEXT}, {_q(LOOSE_TS)}, 1)")
    loose_unit_ok = (f"REGEXP_EXTRACT({_TEXT}, {_q(LOOSE_UNIT)}, 1) = "
                     f"{unit_of(f'REGEXP_EXTRACT({_TEXT}, {_q(LOOSE_SENSOR)}, 1)')}")
    canonical = f"reading_time(v, {grammar(limits)})"  # memoised per thread: the second call costs a comparison
    # CASE, not COALESCE: only CASE branches are evaluated lazily, and the loose regexes are expensive
    return (f"CASE WHEN {canonical} IS NOT NULL THEN {canonical} "
            f"WHEN REGEXP({_TEXT}, {_q(LOOSE)}) AND {loose_unit_ok} AND {_window_sql(limits, loose)} THEN {loose} "
            f"ELSE {EPOCH} END")


def _kafka(config: StreamJobConfig, topic: str, own: dict[str, str]) -> str:
    """Connector options of one Kafka table: the job's own client properties, then IOTPIPE_KAFKA_OPTIONS over them."""
    properties = {"bootstrap.servers": config.bootstrap, **own, **config.kafka_properties}
    return ", ".join([f"'connector' = 'kafka', 'topic' = {_q(topic)}",
                      *(f"{_q('properties.' + key)} = {_q(value)}" for key, value in properties.items())])


def _sink_options(config: StreamJobConfig, name: str) -> str:
    return (f"'sink.delivery-guarantee' = 'exactly-once', "
            f"'sink.transactional-id-prefix' = {_q(config.txn_prefix + '-' + name)}")


# the sinks' producers: transactions outlive a slow checkpoint; small batches, compressed
SINK_PROPERTIES = {"transaction.timeout.ms": "600000", "linger.ms": "20", "compression.type": "lz4"}


def source_ddl(config: StreamJobConfig) -> str:
    topics = Topics(config.topic_prefix)
    options = [
        _kafka(config, topics.readings, {
            "group.id": config.consumer_group, "auto.offset.reset": "earliest", "isolation.level": "read_committed",
            # small per-partition fetches interleave the partitions finely while a backlog is read: less event-time
            # skew between partitions, so fewer first emissions that a slower partition revises right after
            # (fetch.min.bytes stays at its default here: with 64 KiB the job's own bench showed no gain, within its
            # run-to-run spread; docs/performance.md, "Fetch sizes")
            "max.partition.fetch.bytes": "131072"}),
        f"'scan.startup.mode' = {_q(STARTUP_MODES[config.starting_offsets])}",
        "'key.format' = 'raw'", "'key.fields' = 'k'",
        "'value.format' = 'raw'", "'value.fields-include' = 'EXCEPT_KEY'",
    ]
    if config.bounded:
        options.append("'scan.bounded.mode' = 'latest-offset'")
    delay = config.watermark_delay_ms
    return f"""
CREATE TEMPORARY TABLE readings_src (
  k BYTES,
  v BYTES,
  src_partition INT METADATA FROM 'partition' VIRTUAL,
  src_offset BIGINT METADATA FROM 'offset' VIRTUAL,
  src_ts TIMESTAMP_LTZ(3) METADATA FROM 'timestamp' VIRTUAL,
  rt AS ({rowtime_expr(config.limits)}) - {SHIFT},
  WATERMARK FOR rt AS rt - INTERVAL '{delay // 1000}.{delay % 1000:03d}' SECOND
) WITH ({", ".join(options)})"""


def sink_ddl(config: StreamJobConfig) -> list[str]:
    topics = Topics(config.topic_prefix)
    keyed = "'key.format' = 'raw', 'key.fields' = 'k', 'value.format' = 'raw', 'value.fields-include' = 'EXCEPT_KEY'"
    out = []
    # two writers of .raw (fast and slow path): a sink with one input chains to the operators before it, so the fast
    # path's copies are written by the scanning thread without a serialised hand-over
    # (no sink name may be a prefix of another: each aborts lingering transactions by its transactional-id prefix)
    for name, topic, value_type in (("raw", topics.raw, "BYTES"), ("slowraw", topics.raw, "BYTES"),
                                    ("aggregates", topics.aggregates, "BYTES"), ("late", topics.late, "BYTES")):
        out.append(f"CREATE TEMPORARY TABLE {name}_sink (k STRING, v {value_type}) WITH ("
                   f"{_kafka(config, topic, SINK_PROPERTIES)}, {keyed}, {_sink_options(config, name)})")
    out.append(f"CREATE TEMPORARY TABLE deadletter_sink (v STRING) WITH "
               f"({_kafka(config, topics.deadletter, SINK_PROPERTIES)}, "
               f"'format' = 'raw', {_sink_options(config, 'deadletter')})")
    return out


def scan_query() -> str:
    """What the job reads from the source (rt_src: the rowtime, carried over as the stream records' timestamps)."""
    return "SELECT k, v, src_partition, src_offset, src_ts, rt AS rt_src FROM readings_src"


def _field(name: str, config: StreamJobConfig) -> str:
    return f"reading_field(v, {grammar(config.limits)}, {_q(name)})"


LOOSE_SITE = r'"site"\s*:\s*"([A-Za-z0-9][A-Za-z0-9_.-]{0,62})"'
_CLOCK_WINDOW = "(PARTITION BY sk, src_partition ORDER BY pt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"


def classified_view(config: StreamJobConfig) -> str:
    """Every input row with its fast-path verdict and, when fast, its fields: the Java function ``reading_field``
    accepts a message iff it matches CANONICAL as a whole, its unit is the sensor's (UNITS), its instant exists
    and its event time and value are within the limits (``grammar``);
    it parses a message once, however many fields are read.

    Also the row's substream (``sk``: its site, from the fields or, for other forms, the loose ``"site"`` regex) and
    ``pms``: its event time if it is a canonical reading (valid: the fast path accepts exactly what the reference
    validator accepts) and plausible (at most ``IOTPIPE_MAX_FUTURE_S`` after the Kafka record's timestamp), else NULL.
    Only these move a site's clock: a dead letter never does, and a valid reading in another form is judged by the
    clock without moving it (its validity is only known after the Python slow path, which reorders)."""
    future = config.max_future_s
    return f"""
CREATE TEMPORARY VIEW classified AS
SELECT k, v, src_partition, src_offset, rt, pt, {_field("site", config)} IS NOT NULL AS fast,
       {_field("site", config)} AS site, {_field("sensor", config)} AS sensor, {_field("ts", config)} AS ts,
       {_field("value", config)} AS val,
       {_field("seq", config)} AS seq, {_field("head", config)} AS head, {_field("bucket", config)} AS bucket,
       CASE WHEN {_field("site", config)} IS NOT NULL THEN {_field("site", config)}
            ELSE REGEXP_EXTRACT({_TEXT}, {_q(LOOSE_SITE)}, 1) END AS sk,
       CASE WHEN {_field("site", config)} IS NOT NULL
                 AND {EVENT_TIME} <= TIMESTAMPADD(SECOND, {future}, CAST(src_ts AS TIMESTAMP(3)))
            THEN {EVENT_TIME} END AS pms
FROM readings"""  # noqa: S608


def clocked_view() -> str:
    """The substream clock: for each row, the newest plausible event time of its site's rows so far on its Kafka
    partition (itself included), in partition order (``clock``), and the row's number in that substream (``sseq``,
    from 1).

    Computed before the fast/slow split, in partition order, so it depends only on the site's own earlier rows in
    the partition: not on other sites, fetch sizes, parallelism, timing or restarts (the OVER state is checkpointed
    with the offsets). With the producer contract (key = site) a site's rows are all in one partition, so the
    partition count does not matter either; with device keys a site has one substream per partition that carries
    it, and the verdicts are still independent of timing.
    """
    return f"""
CREATE TEMPORARY VIEW clocked AS
SELECT k, v, src_partition, src_offset, rt, fast, head, bucket, sk,
       CAST(COALESCE(MAX(pms) OVER {_CLOCK_WINDOW}, {EPOCH}) AS STRING) AS clock,
       MAX(pms) OVER {_CLOCK_WINDOW} IS NULL OR {EVENT_TIME} >= MAX(pms) OVER {_CLOCK_WINDOW} AS newest,
       COUNT(*) OVER {_CLOCK_WINDOW} AS sseq
FROM (SELECT {_slow_only("k", "BYTES")}, {_slow_only("v", "BYTES")}, src_partition,
             {_slow_only("src_offset", "BIGINT")}, rt, pt, fast, head, bucket, sk, pms
      FROM classified)"""  # noqa: S608


def _slow_only(column: str, sql_type: str) -> str:
    """The column for slow-path rows, NULL for fast-path ones: only the Python validator needs a message's bytes
    after the clock, so the keyed exchange into the OVER does not carry them for the (many) fast-path rows."""
    return f"CASE WHEN fast THEN CAST(NULL AS {sql_type}) ELSE {column} END AS {column}"


def fast_valid_view() -> str:
    """Fast-path readings before the clock (the raw copy chains to the scan)."""
    return """
CREATE TEMPORARY VIEW fast_valid AS
SELECT site, sensor, ts, val, seq, v, rt FROM classified WHERE fast"""


def slow_view(config: StreamJobConfig) -> str:
    """Messages the fast path did not accept, through the Python reference validator (a table function: see
    ``job.classify``); r.ok tells valid readings (in another form) from dead letters. The source topic is a constant
    (one topic is read): carrying it per message as metadata cost two string conversions each. A valid reading
    whose decoded site differs from its substream (the loose regex found another "site") is not numbered
    (``sseq`` NULL); its number stays with the substream (``sk_seq``, sent as a marker)."""
    topic = _q(Topics(config.topic_prefix).readings)
    return f"""
CREATE TEMPORARY VIEW slow AS
SELECT r.ok, r.dl, r.site, r.sensor, r.ts, r.val, r.seq, v, rt, sk, clock, newest, src_partition, sseq AS sk_seq,
       CASE WHEN r.site IS NULL OR r.site = sk THEN sseq END AS sseq
FROM (SELECT * FROM clocked WHERE NOT fast),
     LATERAL TABLE(classify(k, v, {topic}, src_partition, src_offset, {_q(config.limits.wire())}))
       AS r(ok, dl, site, sensor, ts, ts_ms, val, seq)"""  # noqa: S608


def valid_view() -> str:
    """Valid readings with their clock and sequence number: ``head`` = 'site,sensor,ts,value,seq' (val and seq as
    their JSON text, which Python parses exactly as json would) and the day logic's ``bucket`` (the hex digit of
    md5(site)). For fast-path rows the Java parse writes both, once per message (the bucket from a per-site cache):
    built in SQL after the clock's exchange, the CONCAT_WS and the MD5 were half of that operator's CPU."""
    return """
CREATE TEMPORARY VIEW valid AS
SELECT bucket, head, clock, newest, src_partition, sseq, rt FROM clocked WHERE fast
UNION ALL
SELECT SUBSTRING(MD5(site) FROM 1 FOR 1),
       CONCAT_WS(',', site, sensor, ts, CAST(val AS STRING), CAST(seq AS STRING)),
       clock, newest, src_partition, sseq, rt
FROM slow WHERE ok"""


BUCKETS = 16  # Python keys: hex digit of md5(site). Fixed: checkpointed state is keyed by it.


def routed_view() -> str:
    """Each valid reading as a compact item 'site,sensor,ts,value,seq,clock,partition,sseq', its bucket, and whether
    it goes to the event-time batches (``on_time``): only the newest reading of its substream so far, and only when
    this operator has a watermark and the reading is ahead of it. Everything else goes one by one (never dropped).

    Why an on-time row is never dropped by the batches: their window operator (``batched_query``) keeps no watermark
    across a restore, like this Calc, and receives its watermark through this Calc, so its watermark is never ahead
    of the one the row was judged by here. (Flink's window TVF aggregation does restore its watermark: after a
    restore it dropped the readings of a site lagging behind the others as late, see docs/stream-job.md.)"""
    return """
CREATE TEMPORARY VIEW routed AS
SELECT bucket,
       CONCAT_WS(',', head, clock, CAST(src_partition AS STRING), COALESCE(CAST(sseq AS STRING), '')) AS item,
       rt,
       newest AND CURRENT_WATERMARK(rt) IS NOT NULL AND rt > CURRENT_WATERMARK(rt) AS on_time
FROM valid"""


def batched_query(window_minutes: int) -> str:
    """On-time readings, batched per bucket into event-time windows aligned with the local days.

    A window (start, end] (event time; ``SHIFT``) fires when the watermark reaches its end, and Flink emits it before
    forwarding that watermark; windows never straddle a local midnight (the zone's offsets are multiples of the
    window), so when the day's timer fires downstream every on-time reading of the day has been delivered. One Python
    call per batch instead of per reading is what makes the Python stage cheap.

    The batch is ``ARRAY_JOIN(ARRAY_AGG(item), ';')``: the same text as ``LISTAGG(item, ';')`` (items in arrival
    order), but the accumulator is a list, appended to, and joined once when the window fires. LISTAGG's accumulator
    is the string itself, copied whole for every item (quadratic in the batch): that operator's thread used 3.2x the
    CPU (bench_stream_job, per-thread CPU of the JVM).

    A legacy group window (``GROUP BY TUMBLE``), not the window TVF: the TVF's operator restores its watermark from
    the checkpoint and drops as late every row behind it, while the routing Calc, which decided the row was ahead of
    the watermark, starts without one after a restore. The group window operator, like the Calc, starts from
    nothing, and a row for a window that had already fired before the restore simply starts it again (a second,
    later batch, whose readings the day logic takes as revisions).
    """
    window = f"INTERVAL '{window_minutes}' MINUTE"
    return f"""
SELECT bucket, ARRAY_JOIN(ARRAY_AGG(item), ';') AS batch, TUMBLE_ROWTIME(rt, {window}) AS rt
FROM routed_on_time
GROUP BY bucket, TUMBLE(rt, {window})"""  # noqa: S608 (an int we validated)


def on_time_view() -> str:
    return "CREATE TEMPORARY VIEW routed_on_time AS SELECT bucket, item, rt FROM routed WHERE on_time"


def behind_query() -> str:
    """Readings already behind the watermark (out of order): one per call, straight to the day logic. Also a marker
    'site,,reason,,,clock,partition,sseq' for each dead letter: the day logic learns that this number of the site's
    sequence will not come as a reading (site and sseq empty when the message names no site), and counts it by
    reason; and one with an empty reason for a valid reading that went to another site than its substream's."""
    return f"""SELECT bucket, item AS batch, rt FROM routed WHERE NOT on_time
UNION ALL
SELECT SUBSTRING(MD5(COALESCE(sk, '')) FROM 1 FOR 1),
       CONCAT_WS(',', COALESCE(sk, ''), '',
                 CASE WHEN ok THEN '' ELSE COALESCE(REGEXP_EXTRACT(dl, {_q(DL_REASON)}, 1), 'unknown') END, '', '',
                 clock, CAST(src_partition AS STRING), COALESCE(CAST(sk_seq AS STRING), '')), rt
FROM slow WHERE NOT ok OR sseq IS NULL"""  # noqa: S608


DL_REASON = r'"reason":"([a-z-]+)"'  # deadletter.v1 as DeadLetter.encode writes it


def slow_copy_view(config: StreamJobConfig) -> str:
    """The slow path's verdicts for the ``.raw`` copy and the dead letters, straight from ``classified`` (no clock).

    The job is planned in two parts (the Python day logic sits between a to_data_stream and a from_data_stream):
    the part that feeds the day logic and the statement set of the sinks. Each part plans its own copy of every
    view it uses; if the sinks read ``slow`` (which is after the clock), the statement set gets a second keyed
    exchange and ``OVER`` aggregate of every message. Reading ``classified`` instead keeps the statement set's
    operators chained to the scan. The Python validator then runs twice for a slow-path message (once per part):
    it is deterministic, and slow-path messages are the rare ones."""
    topic = _q(Topics(config.topic_prefix).readings)
    return f"""
CREATE TEMPORARY VIEW slow_copy AS
SELECT r.ok, r.dl, r.site, r.sensor, v
FROM (SELECT * FROM classified WHERE NOT fast),
     LATERAL TABLE(classify(k, v, {topic}, src_partition, src_offset, {_q(config.limits.wire())}))
       AS r(ok, dl, site, sensor, ts, ts_ms, val, seq)"""  # noqa: S608


def inserts() -> list[str]:
    return [
        "INSERT INTO raw_sink SELECT CONCAT(site, '/', sensor), v FROM fast_valid",
        "INSERT INTO slowraw_sink SELECT CONCAT(site, '/', sensor), v FROM slow_copy WHERE ok",
        "INSERT INTO deadletter_sink SELECT dl FROM slow_copy WHERE NOT ok",
    ]
