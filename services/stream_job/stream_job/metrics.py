"""The job's metrics (pure: no PyFlink import; unit-tested in the main venv with a stand-in metric group).

The day operator counts what happens (``core.DayAggregator.counts``) and hands the counts here; ``DayMetrics`` keeps
them in Flink's metric system, group ``iotpipe`` of the ``daily-aggregates`` operator (one set per subtask). Flink's
Prometheus reporter (``reporter_settings``: the plugin ships with Flink and PyFlink, ``plugins/metrics-prometheus``)
serves them with every other Flink metric on ``IOTPIPE_METRICS_PORT``; docs/stream-job.md lists the Prometheus names.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

GROUP = "iotpipe"
COUNTERS = ("late", "overflow", "days_closed", "days_dropped", "revisions")  # the keys of DayAggregator.counts
DEAD_LETTERS = "dead_letters"  # counter in the key/value group reason=<reason>
CLOCK_LAG = "clock_lag_ms"  # gauge
REPORTER_FACTORY = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"


def reporter_settings(port: int) -> dict[str, str]:
    """Flink settings of the Prometheus reporter on ``port`` (0: no reporter)."""
    if port == 0:
        return {}
    return {"metrics.reporter.prom.factory.class": REPORTER_FACTORY, "metrics.reporter.prom.port": str(port)}


class DayMetrics:
    """The day operator's metrics in one Flink metric group (``operator_group``: the runtime context's group)."""

    def __init__(self, operator_group: Any) -> None:
        self.group = operator_group.add_group(GROUP)
        self.counters = {name: self.group.counter(name) for name in COUNTERS}
        self.dead_letters: dict[str, Any] = {}
        self.clocks: dict[str, int] = {}  # site -> the newest clock seen here
        self.group.gauge(CLOCK_LAG, self.clock_lag)

    def add(self, counts: Counter[str]) -> None:
        """Add the day logic's counts (and clear them)."""
        for name, n in counts.items():
            if n:
                self.counters[name].inc(n)
        counts.clear()

    def dead_letter(self, reason: str) -> None:
        counter = self.dead_letters.get(reason)
        if counter is None:
            counter = self.dead_letters[reason] = self.group.add_group("reason", reason).counter(DEAD_LETTERS)
        counter.inc(1)

    def clock(self, site: str, clock_ms: int) -> None:
        """A message of the site with this clock has arrived (0: no plausible canonical reading yet, no clock)."""
        if clock_ms > self.clocks.get(site, 0):
            self.clocks[site] = clock_ms

    def forget(self, site: str) -> None:
        self.clocks.pop(site, None)

    def clock_lag(self) -> int:
        """Maximum substream clock lag: how far the most-behind site seen here is behind the most advanced one (ms)."""
        return max(self.clocks.values()) - min(self.clocks.values()) if self.clocks else 0


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
