"""Idle partitions (issue 12): one readings partition of six stays empty, and the days still close, with the right
final aggregates and late set, on the default idle limit (IOTPIPE_IDLE_TIMEOUT_MS, 30 s), against real Kafka + Flink.

Without the idle limit the watermark (the minimum over partitions) never leaves the empty partition's nothing and no
day would ever be first-emitted. With it, the empty partition stops holding the watermark back after the limit, and
the day logic's processing-time timer closes every day whose end its site's own clock has passed.

Input (key = site, each site written to its own partition, 0..4; partition 5 never gets a message): quarter-hour
TH1 and W1 readings of five sites in Europe/Athens from 2020-10-05 00:15 to 2020-10-08 00:00 local, a TH1 reading
of each at 01:00 on the 8th, then one W1 reading of the 5th for `idl-0` (its clock is then past the 5th's end +
2 days: late). The job runs unbounded at parallelism 2 (each source subtask reads three partitions, one of them the
empty one). Expected, worked out here from the day rule: per site, AggDay[TH1] (mean) and AggDay[W1] (sum) of the
5th, 6th and 7th; nothing of the 8th (it has not ended on any clock); the late set is that one W1 reading.
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

sys.path.insert(0, str(Path(__file__).parent))
from job_aggregates import finals, same

# generous: on a machine shared by many builds the job alone can take minutes to start
pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.slow, pytest.mark.timeout(3600)]

ATHENS = ZoneInfo("Europe/Athens")
SITES = [f"idl-{n}" for n in range(5)]
EMPTY = 5  # the partition that stays empty
UNITS = {"TH1": "C", "W1": "l"}


def reading(site: str, local: datetime, sensor: str, value: float, seq: int) -> bytes:
    ts = local.replace(tzinfo=ATHENS).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"v": 1, "site": site, "sensor": sensor, "ts": ts, "value": value, "unit": UNITS[sensor],
                       "seq": seq}, separators=(",", ":")).encode()


def site_input(n: int) -> tuple[list[bytes], dict[str, tuple[float, int]]]:
    """One site's messages in send order, and its expected final aggregates ('<site>/<name>/<day>' -> value, count)."""
    site = SITES[n]
    out: list[bytes] = []
    values: dict[tuple[str, date], list[float]] = defaultdict(list)
    at, seq = datetime(2020, 10, 5, 0, 15), 0
    while at <= datetime(2020, 10, 8):
        seq += 1
        day = (at - timedelta(minutes=1)).date()  # (D 00:00, D+1 00:00]: midnight closes the previous day
        for sensor, value in (("TH1", 18.0 + (seq * (n + 3)) % 11), ("W1", float((seq * 7 + n) % 13))):
            out.append(reading(site, at, sensor, value, seq))
            values[(sensor, day)].append(value)
        at += timedelta(minutes=15)
    out.append(reading(site, datetime(2020, 10, 8, 1), "TH1", 20.0, seq + 1))  # the 8th: not ended anywhere
    want = {}
    for (sensor, day), vals in values.items():
        total = math.fsum(vals)
        want[f"{site}/AggDay[{sensor}]/{day}"] = (total / len(vals) if sensor == "TH1" else total, len(vals))
    return out, want


LATE = ("idl-0", datetime(2020, 10, 5, 10, 0), 5.0, 9000)  # sent last: clock (8th 01:00) >= end of the 5th + 2 days


def produce(bootstrap: str, topic: str, per_partition: dict[int, list[tuple[bytes, bytes]]]) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    for partition, messages in per_partition.items():
        for key, value in messages:
            producer.produce(topic, value=value, key=key, partition=partition)
            producer.poll(0)
    assert producer.flush(60) == 0


def end_offset(bootstrap: str, topic: str, partition: int) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "idle-check"})
    try:
        return int(consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1])
    finally:
        consumer.close()


def test_an_empty_partition_does_not_stop_days_from_closing(job_kit: Any, unique_name: Any) -> None:
    prefix = unique_name("idle")
    topics = job_kit.create_topics(prefix, readings_partitions=6)
    want: dict[str, tuple[float, int]] = {}
    per_partition: dict[int, list[tuple[bytes, bytes]]] = {}
    for n, site in enumerate(SITES):
        messages, aggregates = site_input(n)
        per_partition[n] = [(site.encode(), m) for m in messages]
        want |= aggregates
    site, at, value, seq = LATE
    per_partition[0].append((site.encode(), reading(site, at, "W1", value, seq)))
    produce(job_kit.bootstrap, topics.readings, per_partition)
    job = job_kit.start_job(prefix, "idle", flink_parallelism="2")  # the idle limit: its default

    job_kit.wait_until(lambda: same(finals(job_kit, topics.aggregates), want), job, 2400,
                       "the final aggregates of every site's 5th-7th",
                       lambda: f"got {finals(job_kit, topics.aggregates)}")
    late = [json.loads(m.value) for m in job_kit.read_all(topics.late, idle=0.5)]
    assert [(x["reading"]["site"], x["reading"]["seq"], x["day"], x["reason"], x["late_by_ms"]) for x in late] == [
        ("idl-0", 9000, "2020-10-05", "beyond-allowed-lateness", 3600 * 1000)]  # clock 8th 01:00 - 8th 00:00
    assert end_offset(job_kit.bootstrap, topics.readings, EMPTY) == 0  # the partition stayed empty throughout
    assert job.terminate() == 0, job.log_tail()
