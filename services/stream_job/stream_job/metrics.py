"""The job's metrics endpoint (pure: no PyFlink import; unit-tested in the main venv).

The day operator (Java ``dev.iotpipe.flink.DailyAggregates``) keeps what happens in Flink's metric system, group
``iotpipe`` of the ``daily-aggregates`` operator (one set per subtask): counters late, overflow, days_closed,
days_dropped, revisions, dead_letters by reason, and the gauge clock_lag_ms. Flink's Prometheus reporter
(``reporter_settings``: the plugin ships with Flink and PyFlink, ``plugins/metrics-prometheus``) serves them with
every other Flink metric on ``IOTPIPE_METRICS_PORT``; docs/stream-job.md lists the Prometheus names.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from pathlib import Path

REPORTER_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def reporter_settings(port: int) -> dict[str, str]:
    """Flink settings of the Prometheus reporter on ``port`` (0: no reporter)."""
    if port == 0:
        return {}
    return {"metrics.reporter.prom.factory.class": REPORTER_FACTORY, "metrics.reporter.prom.port": str(port)}


def reporter_on_classpath(environ: MutableMapping[str, str], flink_home: Path) -> Path | None:
    """Local runs: put the Prometheus reporter jar on the classpath of PyFlink's gateway JVM, which runs the job's
    local cluster; returns the jar, or None when there is none or it is already in ``flink_home/lib``.

    A local cluster finds reporter factories only on its classpath (it does not load ``plugins/``: "could not be
    found ... Available factories: []"). PyFlink appends ``$HADOOP_CLASSPATH`` to the gateway's classpath, so the jar
    that ships in ``plugins/metrics-prometheus`` is added there. Must run before the first PyFlink call starts the
    gateway. In a Flink cluster (application mode) the gateway already runs and this changes nothing.
    """
    if any((flink_home / "lib").glob("flink-metrics-prometheus-*.jar")):
        return None
    jars = sorted((flink_home / "plugins" / "metrics-prometheus").glob("flink-metrics-prometheus-*.jar"))
    if not jars:
        return None
    current = [p for p in environ.get("HADOOP_CLASSPATH", "").split(os.pathsep) if p]
    if str(jars[-1]) not in current:
        environ["HADOOP_CLASSPATH"] = os.pathsep.join([*current, str(jars[-1])])
    return jars[-1]
