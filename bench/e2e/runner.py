"""Glue of the bench's main loop: the warm-up, one sample of every observer, and one step's figures from the samples
(its measuring window = the last two thirds of its hold)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import happybase
from confluent_kafka import Producer

from e2e.clients import ClientLog, Clients
from e2e.load import kafka_settings
from e2e.observe import Offsets, ProbeLog, Usage, rows_written, usage
from e2e.pipeline import Running
from e2e.schedule import SENSOR_NAMES, Plan, Step, value_of
from e2e.stats import Window, latency_summary, percentile
from iotcommon import hbase_layout as layout
from iotcommon.messages import Reading
from iotcommon.sensors import SENSORS

WARM_SITE = "site9999"  # the warm-up reading's site: outside every plan (plans have at most 9999 sites: 0..9998)
WARM_TIMEOUT_S = 1200.0  # the stream job starts in ~1 min on an idle box, 10+ min at load 40
MIB = 1 << 20


@dataclass(frozen=True)
class Sample:
    t: float  # time.time()
    ends: dict[str, int]  # topic -> end offset (summed over partitions)
    rows: dict[str, float]  # HBase table -> rows written by the sync workers
    lag: dict[str, int]  # consumer group -> records not yet committed
    usage: dict[str, Usage]
    ws_records: int
    ws_committed_records: int


def sample(offsets: Offsets, pipeline: Running, pids: dict[str, int], clients: Clients,
           committed: Clients | None) -> Sample:
    t = offsets.topics
    ends = {name: offsets.end(topic) for name, topic in (("readings", t.readings), ("raw", t.raw),
                                                           ("aggregates", t.aggregates), ("late", t.late),
                                                           ("deadletters", t.deadletter))}
    return Sample(time.time(), ends, rows_written(pipeline.sync_ports), offsets.lag(), usage(pids),
                  clients.log.records, committed.log.records if committed else 0)


def warm_up(pipeline: Running, plan: Plan, log: Callable[[str], None]) -> None:
    """One reading of each sensor of a site outside the plan (so every readings partition has data and none holds
    the job's watermark back), until the TH1 row is readable in HBase: the stream job and a sync worker run end to
    end."""
    ts = plan.base - timedelta(days=1)
    producer = Producer(kafka_settings(pipeline.bootstrap))
    for sensor in SENSOR_NAMES:
        reading = Reading(WARM_SITE, sensor, ts.strftime("%Y-%m-%dT%H:%M:%SZ"), value_of(sensor),
                          SENSORS[sensor].unit, 0)
        producer.produce(pipeline.topics.readings, reading.encode(), reading.device)
    producer.flush(60)
    key = layout.reading_key(WARM_SITE, "TH1", int(ts.timestamp() * 1000), 0)
    conn = happybase.Connection(*pipeline.thrift, timeout=30_000)
    started = time.monotonic()
    log("warm-up: waiting until a reading goes through the whole pipeline (the stream job starts)")
    try:
        while not conn.table(layout.table_name("iotpipe", "raw")).row(key):
            if time.monotonic() - started > WARM_TIMEOUT_S:
                raise SystemExit(f"warm-up: no row in HBase after {WARM_TIMEOUT_S:.0f} s; see the logs under "
                                 f"{pipeline.stack.s.logs_dir}")
            dead = pipeline.stack.dead(pipeline.stack.process_names())
            if dead:
                raise SystemExit(f"warm-up: {', '.join(dead)} died; see the logs under {pipeline.stack.s.logs_dir}")
            time.sleep(1.0)
    except OSError:
        time.sleep(1.0)  # tables not created yet: retried below
        conn.close()
        return warm_up(pipeline, plan, log)
    conn.close()
    log(f"warm-up: through in {time.monotonic() - started:.0f} s")


@dataclass(frozen=True)
class StepResult:
    window: Window
    data: dict[str, Any]


def _at(samples: Sequence[Sample], t: float, after: bool) -> Sample:
    """The first sample at or after t (after=True), or the last one at or before t."""
    if after:
        return next((s for s in samples if s.t >= t), samples[-1])
    return next((s for s in reversed(samples) if s.t <= t), samples[0])


def summarise(plan: Plan, step: Step, start_wall: float, samples: Sequence[Sample], probes: ProbeLog,
              clients: ClientLog, committed: ClientLog | None = None) -> StepResult:
    lo_t = start_wall + step.start_s + step.hold_s / 3
    hi_t = start_wall + step.end_s
    a, b = _at(samples, lo_t, True), _at(samples, hi_t, False)
    if b.t <= a.t:
        a, b = samples[0], samples[-1]
    seconds = b.t - a.t

    def per_s(x: float, y: float) -> float:
        return (y - x) / seconds

    first = step.start_index + int(step.rate * step.hold_s / 3)
    in_window = range(first, step.end_index)
    # the prober's and the clients' threads are still adding entries: read copies (dict.copy holds the GIL)
    hbase = [v for i, v in probes.reading_s.copy().items() if i in in_window]
    ws = [v for i, v in clients.latency_s.copy().items() if i in in_window]
    ws_committed = [v for i, v in committed.latency_s.copy().items() if i in in_window] if committed else []
    days = [v for d, v in probes.day_s.copy().items() if plan.first_of_day(d + timedelta(days=1)) in in_window]
    raw_rows = per_s(a.rows.get("raw", 0.0), b.rows.get("raw", 0.0))
    window = Window(float(step.rate), seconds, sum(a.lag.values()), sum(b.lag.values()), raw_rows)
    cpu = {n: 100 * (b.usage[n].cpu_s - a.usage[n].cpu_s) / seconds for n in b.usage if n in a.usage}
    data = {
        "offered": step.rate, "start_s": step.start_s, "window_s": round(seconds, 1),
        "readings_in": per_s(a.ends["readings"], b.ends["readings"]),
        "raw_out": per_s(a.ends["raw"], b.ends["raw"]),
        "aggregates_out": per_s(a.ends["aggregates"], b.ends["aggregates"]),
        "late_out": per_s(a.ends["late"], b.ends["late"]),
        "deadletters_out": per_s(a.ends["deadletters"], b.ends["deadletters"]),
        "hbase_raw_rows": raw_rows,
        "hbase_aggregate_rows": per_s(a.rows.get("aggregates", 0.0), b.rows.get("aggregates", 0.0)),
        "ws_records": per_s(a.ws_records, b.ws_records),
        "ws_committed_records": per_s(a.ws_committed_records, b.ws_committed_records),
        "lag_start": a.lag, "lag_end": b.lag, "lag_growth": window.lag_growth, "sustained": window.sustained,
        "hbase_latency": latency_summary(hbase), "ws_latency": latency_summary(ws),
        "ws_committed_latency": latency_summary(ws_committed),
        "day_close_s_p50": percentile(days, 0.5), "day_close_s_max": max(days) if days else float("nan"),
        "days_closed": len(days),
        "cpu": cpu, "rss_mib": {n: u.rss / MIB for n, u in b.usage.items()},
        "at": datetime.fromtimestamp(a.t, UTC).strftime("%H:%M:%S"),
    }
    return StepResult(window, data)
