"""The job's metrics, end to end: a real running job (real Kafka + Flink) serves them on its Prometheus endpoint
(Flink's Prometheus reporter, IOTPIPE_METRICS_PORT), and the values match the input this test produced.

Input (one readings partition, key = site, both sites in Europe/Athens): quarter-hour TH1 readings of `met-a` and
`met-b` from 2020-10-05 00:15 to 2020-10-08 00:00 local (days 5, 6 and 7 complete), then a reading of each on the
8th (`met-a` at 12:00, `met-b` at 06:00: the 8th stays open); two readings of the 5th sent after that (the site's
clock is then past the 5th's end + 2 days: late), and dead letters of three reasons. Once the first emissions are
visible, one more reading of the 7th (within the lateness: accepted, so a revision).

Expected, worked out from the rules of docs/stream-job.md: late 2; dead letters unparsable 2, unknown-sensor 1,
out-of-range 1; days closed 6 (days 5-7 of each site; the 8th has not ended on either clock); nothing overflowed;
at most the 5th of each site dropped; revisions = the aggregates on the topic with revision > 1 (at least the one
the accepted late reading causes); maximum clock lag 6 h (12:00 - 06:00 on the 8th).
"""

from __future__ import annotations

import json
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iotpipe_stack.ports import free_ports
from stream_job.metrics import reporter_on_classpath, reporter_settings

ATHENS = ZoneInfo("Europe/Athens")
PREFIX = "flink_taskmanager_job_task_operator_iotpipe_"


def reading(site: str, local: datetime, value: float, seq: int, sensor: str = "TH1", unit: str = "C") -> bytes:
    ts = local.replace(tzinfo=ATHENS).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"v": 1, "site": site, "sensor": sensor, "ts": ts, "value": value, "unit": unit, "seq": seq},
                      separators=(",", ":")).encode()


def first_input() -> list[tuple[bytes, bytes]]:
    out: list[tuple[bytes, bytes]] = []
    for n, site in enumerate(("met-a", "met-b")):
        at = datetime(2020, 10, 5, 0, 15)
        seq = 0
        while at <= datetime(2020, 10, 8):
            seq += 1
            out.append((site.encode(), reading(site, at, 20.0 + seq % 7, seq)))
            at += timedelta(minutes=15)
        seq += 1
        out.append((site.encode(), reading(site, datetime(2020, 10, 8, 12 - 6 * n), 21.0, seq)))
    out += [(b"met-a", reading("met-a", datetime(2020, 10, 5, 9), 30.0, 900)),  # late: clock 8th 12:00
            (b"met-b", reading("met-b", datetime(2020, 10, 5, 23), 30.0, 901)),  # late: clock 8th 06:00
            (b"met-a", b"\xff\xfe not json"),
            (b"met-b", b'{"v":1,"site":"met-b"'),
            (b"met-a", reading("met-a", datetime(2020, 10, 7, 9), 1.0, 902, sensor="TH9")),
            (b"met-b", reading("met-b", datetime(2020, 10, 7, 9), 1e6, 903))]  # far beyond TH1's range
    return out


def scrape(port: int) -> dict[str, float]:
    """The job's own metrics: `<name>` or `<name>{reason}` -> value summed over subtasks ({} if not up yet)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        series, _, value = line.rpartition(" ")
        name, _, labels = series.partition("{")
        key = name.removeprefix(PREFIX)
        reason = next((p.split("=", 1)[1].strip('"') for p in labels.rstrip("}").split(",")
                       if p.startswith("reason=")), None)
        if reason is not None:
            key += "{" + reason + "}"
        out[key] = out.get(key, 0.0) + float(value)
    return out


@pytest.mark.kafka
@pytest.mark.flink
@pytest.mark.slow
@pytest.mark.timeout(3600)  # generous: on a machine shared by many builds the job alone can take minutes to start
def test_the_prometheus_endpoint_counts_what_the_input_holds(job_kit: Any, unique_name: Any) -> None:
    prefix = unique_name("metrics")
    topics = job_kit.create_topics(prefix, readings_partitions=1)
    (port,) = free_ports(1)
    job_kit.produce(topics.readings, first_input())
    job = job_kit.start_job(prefix, "metrics", metrics_port=str(port))
    # (Flink's Prometheus reporter writes '_' for the '-' of a label value; a counter never incremented is not shown)
    want = {"late": 2.0, "reason_dead_letters{unparsable}": 2.0, "reason_dead_letters{unknown_sensor}": 1.0,
            "reason_dead_letters{out_of_range}": 1.0, "days_closed": 6.0, "overflow": 0.0,
            "clock_lag_ms": 6 * 3600 * 1000.0}

    def matches(metrics: dict[str, float]) -> bool:
        return all(metrics.get(k, 0.0) == v for k, v in want.items()) and len(metrics) > 0

    job_kit.wait_until(lambda: matches(scrape(port)), job, 2400, "the metrics of the first input",
                       lambda: f"scraped {scrape(port)}")
    # the first emissions of the 7th are out: a reading of the 7th now is accepted (clock < end + 2 days) and revises
    job_kit.wait_until(lambda: any(json.loads(m.value)["day"] == "2020-10-07"
                                   for m in job_kit.read_all(topics.aggregates, idle=0.5)), job, 600,
                       "the first emission of the 7th")
    job_kit.produce(topics.readings, [(b"met-a", reading("met-a", datetime(2020, 10, 7, 10, 5), 40.0, 904))])

    def revised() -> int:
        return sum(json.loads(m.value)["revision"] > 1 for m in job_kit.read_all(topics.aggregates, idle=0.5))

    job_kit.wait_until(lambda: revised() >= 1 and scrape(port).get("revisions") == revised(), job, 900,
                       "the revision counted", lambda: f"revised {revised()}, scraped {scrape(port)}")
    final = scrape(port)
    assert matches(final)  # nothing else changed
    # only the 5th can be dropped (clock and watermark past its end + 2 days), once per site; whether it is by now
    # depends on when the watermark reached the day logic relative to each site's last message
    assert final.get("days_dropped", 0.0) <= 2
    assert job.terminate() == 0, job.log_tail()


# -- unit tests (no services) ------------------------------------------------------------------------------------


def test_the_prometheus_reporter_is_configured_only_with_a_port() -> None:
    assert reporter_settings(0) == {}
    assert reporter_settings(9249) == {
        "metrics.reporter.prom.factory.class": "org.apache.flink.metrics.prometheus.PrometheusReporterFactory",
        "metrics.reporter.prom.port": "9249"}


def test_a_local_run_puts_the_reporter_shipped_in_plugins_on_the_gateway_classpath(tmp_path: Path) -> None:
    jar = tmp_path / "plugins" / "metrics-prometheus" / "flink-metrics-prometheus-2.2.1.jar"
    jar.parent.mkdir(parents=True)
    jar.write_bytes(b"")
    environ = {"HADOOP_CLASSPATH": "/x.jar"}
    assert reporter_on_classpath(environ, tmp_path) == jar
    assert reporter_on_classpath(environ, tmp_path) == jar  # idempotent
    assert environ["HADOOP_CLASSPATH"] == f"/x.jar:{jar}"
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / jar.name).write_bytes(b"")  # already on Flink's classpath (an image): nothing to add
    assert reporter_on_classpath({}, tmp_path) is None
    assert reporter_on_classpath({}, tmp_path / "nothing") is None
