"""``python -m ws_bridge.demo_feed``: writes synthetic *stream-job output* to a pipeline's topics.

A stand-in for simulators + stream job when only the bridge (and maybe the sync worker) is wanted: dashboards
demos, the browser test when the stream job is not available, and manual checks. Per simulated 15-minute step and
site it writes every 15-min sensor's reading to ``<prefix>.raw``; Etot/Wtot at local midnight; Mov1 events; when a
local day closes, that day's aggregates (mean/sum/diff/rest/count of what it wrote) to ``<prefix>.aggregates``; every
20 steps a 2-day-old W1 reading (raw, out of order) plus a revision of that day's AggDay[W1]; every 120 steps a
10-day-old W1 reading to ``<prefix>.late``; every 500 steps a dead letter. Transactional, like the stream job.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from confluent_kafka import Producer

from iotcommon import logs
from iotcommon.config import load, setting
from iotcommon.days import day_end, day_of, day_start, iso_z, zone
from iotcommon.errors import ConfigError
from iotcommon.logs import log_format_setting, log_level_setting
from iotcommon.messages import Aggregate, DeadLetter, LateReading, Reading
from iotcommon.sensors import REST_PARTS, SENSORS, Rule
from iotcommon.shutdown import stop_on_signals
from iotcommon.topics import Topics

log = logging.getLogger("ws_bridge.demo_feed")

RANGES = {"TH1": (18.0, 24.0), "TH2": (19.0, 25.0), "HVAC1": (0.0, 100.0), "HVAC2": (0.0, 200.0),
          "MiAC1": (0.0, 150.0), "MiAC2": (0.0, 200.0), "W1": (0.0, 1.0)}


@dataclass(frozen=True)
class FeedConfig:
    kafka_bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers", env="IOTPIPE_KAFKA_BOOTSTRAP")
    topic_prefix: str = setting("iotpipe", "prefix of every topic", env="IOTPIPE_TOPIC_PREFIX")
    site_tz: str = setting("Europe/Athens", "sites' time zone", env="IOTPIPE_SITE_TZ")
    sites: tuple[str, ...] = setting(("site1", "site2"), "site ids, comma separated", env="IOTPIPE_FEED_SITES")
    start: str = setting("2020-01-01T00:00:00Z", "simulated start (UTC)", env="IOTPIPE_FEED_START")
    steps_per_s: float = setting(4.0, "simulated 15-minute steps per second", env="IOTPIPE_FEED_STEPS_PER_S",
                                 minimum=0.01)
    steps: int = setting(0, "stop after this many steps (0 = run until SIGTERM)", env="IOTPIPE_FEED_STEPS",
                         minimum=0)
    seed: int = setting(1, "random seed", env="IOTPIPE_FEED_SEED")
    log_level: str = log_level_setting()
    log_format: str = log_format_setting()


class Feeder:
    def __init__(self, config: FeedConfig) -> None:
        self.c = config
        self.topics = Topics(config.topic_prefix)
        self.tz = zone(config.site_tz)
        self.rng = random.Random(config.seed)  # noqa: S311 - synthetic data, not security
        self.now = datetime.fromisoformat(config.start).astimezone(UTC)
        self.seq: dict[tuple[str, str], int] = defaultdict(int)
        self.day_values: dict[tuple[str, date, str], list[float]] = defaultdict(list)
        self.meter = {(site, s): 0.0 for site in config.sites for s in ("Etot", "Wtot")}
        self.meter_at_day_end: dict[tuple[str, str, date], float] = {}
        self.revisions: dict[tuple[str, str, date], int] = defaultdict(int)
        self.step_no = 0
        self.producer = Producer({"bootstrap.servers": config.kafka_bootstrap, "linger.ms": 5,
                                  "transactional.id": f"demo-feed-{config.topic_prefix}-{time.time_ns()}"})
        self.producer.init_transactions(30)

    def _reading(self, site: str, sensor: str, ts: datetime, value: float) -> Reading:
        self.seq[(site, sensor)] += 1
        return Reading(site, sensor, iso_z(ts), round(value, 3), SENSORS[sensor].unit, self.seq[(site, sensor)])

    def _send(self, topic: str, key: str | None, value: bytes) -> None:
        self.producer.produce(topic, value=value, key=key)

    def _raw(self, reading: Reading, *, count: bool = True) -> None:
        self._send(self.topics.raw, reading.device, reading.encode())
        if count:
            self.day_values[(reading.site, day_of(datetime.fromisoformat(reading.ts), self.tz), reading.sensor)].append(
                reading.value)

    def _aggregate(self, site: str, kind: str, sensor: str, day: date, value: float, count: int) -> None:
        key = (site, f"{kind}[{sensor}]", day)
        self.revisions[key] += 1
        agg = Aggregate(site, f"{kind}[{sensor}]", kind, sensor, day.isoformat(), round(value, 3),
                        SENSORS[sensor].unit, count, self.revisions[key], iso_z(day_start(day, self.tz)),
                        iso_z(day_end(day, self.tz)), iso_z(datetime.now(UTC)))
        self._send(self.topics.aggregates, agg.key, agg.encode())

    def _close_day(self, site: str, day: date) -> None:
        sums: dict[str, float] = {}
        for sensor, spec in SENSORS.items():
            values = self.day_values.get((site, day, sensor), [])
            if spec.rule is Rule.MEAN and values:
                self._aggregate(site, "AggDay", sensor, day, sum(values) / len(values), len(values))
            elif spec.rule is Rule.SUM and values:
                sums[sensor] = sum(values)
                self._aggregate(site, "AggDay", sensor, day, sums[sensor], len(values))
            elif spec.rule is Rule.COUNT:
                self._aggregate(site, "AggDayMov", sensor, day, float(len(values)), len(values))
        for total, parts in REST_PARTS.items():
            end, before = self.meter_at_day_end.get((site, total, day)), self.meter_at_day_end.get(
                (site, total, day - timedelta(days=1)))
            if end is None or before is None:
                continue
            diff = end - before
            self._aggregate(site, "AggDayDiff", total, day, diff, 2)
            self._aggregate(site, "AggDayRest", total, day, diff - sum(sums.get(p, 0.0) for p in parts), 2)

    def step(self) -> None:
        self.producer.begin_transaction()
        self.now += timedelta(minutes=15)
        self.step_no += 1
        local = self.now.astimezone(self.tz)
        for site in self.c.sites:
            for sensor, (lo, hi) in RANGES.items():
                self._raw(self._reading(site, sensor, self.now, self.rng.uniform(lo, hi)))
            if self.rng.random() < 0.15:
                self._raw(self._reading(site, "Mov1", self.now - timedelta(minutes=self.rng.randint(1, 14)), 1.0))
            if local.hour == 0 and local.minute == 0:  # midnight: meters, and the day that just ended closes
                closed = day_of(self.now, self.tz)
                for meter, per_day in (("Etot", 62_400.0), ("Wtot", 110.0)):
                    self.meter[(site, meter)] += per_day + self.rng.uniform(-0.02, 0.02) * per_day
                    self.meter_at_day_end[(site, meter, closed)] = self.meter[(site, meter)]
                    self._raw(self._reading(site, meter, self.now, self.meter[(site, meter)]), count=False)
                self._close_day(site, closed)
            if self.step_no % 20 == 0:  # accepted late reading: out of order, revises its (closed) day's AggDay[W1]
                old = self.now - timedelta(days=2)
                reading = self._reading(site, "W1", old, self.rng.uniform(0, 1))
                self._raw(reading)
                day = day_of(old, self.tz)
                if self.revisions.get((site, "AggDay[W1]", day)):
                    values = self.day_values[(site, day, "W1")]
                    self._aggregate(site, "AggDay", "W1", day, sum(values), len(values))
            if self.step_no % 120 == 0:  # rejected: beyond the allowed lateness
                old = self.now - timedelta(days=10)
                reading = self._reading(site, "W1", old, self.rng.uniform(0, 1))
                late = LateReading(reading, "beyond-allowed-lateness", day_of(old, self.tz).isoformat(),
                                   int(timedelta(days=8).total_seconds() * 1000))
                self._send(self.topics.late, reading.device, late.encode())
        if self.step_no % 500 == 0:
            junk = b'{"site": "site1", "sensor": "TH9", "value": 1}'
            dead = DeadLetter("unknown-sensor", "unknown sensor 'TH9'", self.topics.readings, 0, self.step_no, None,
                              base64.b64encode(junk).decode(), iso_z(datetime.now(UTC)))
            self._send(self.topics.deadletter, None, dead.encode())
        self.producer.commit_transaction(30)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load(FeedConfig, sys.argv[1:] if argv is None else argv, os.environ,
                      prog="python -m ws_bridge.demo_feed", description=__doc__)
    except ConfigError as exc:
        print(f"demo_feed: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_level, config.log_format)
    stop = stop_on_signals()
    feeder = Feeder(config)
    log.info("feeding %s.* for sites %s from %s at %.1f steps/s", config.topic_prefix, ",".join(config.sites),
             config.start, config.steps_per_s)
    interval = 1.0 / config.steps_per_s
    next_at = time.monotonic()
    while not stop.is_set() and (config.steps == 0 or feeder.step_no < config.steps):
        feeder.step()
        if feeder.step_no % 96 == 0:
            log.info("simulated time %s (%d steps)", iso_z(feeder.now), feeder.step_no)
        next_at += interval
        time.sleep(max(0.0, next_at - time.monotonic()))
    log.info("stopped at simulated time %s after %d steps", iso_z(feeder.now), feeder.step_no)
    return 0


if __name__ == "__main__":
    sys.exit(main())
