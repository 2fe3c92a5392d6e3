"""A restore must not lose the readings of a site that lags behind the others (issue 12, the chaos test's 9 missing
quarter-hours), against real Kafka + Flink.

The situation of the chaos run: one readings partition; one site (`rst-lead`) is days ahead of another
(`rst-lag`, e.g. a restarted simulator replaying), so the lagging site's newest readings are behind the watermark and
reach the day logic one by one. Then the job is killed with -9 and restored from its checkpoint. Before the fix the
routing (`stream_job.sql.routed_view`) started without a watermark after the restore, saw the lagging site's
readings "ahead of the watermark" again and sent them to the event-time batches, whose window operator had restored
the old, higher watermark and dropped them as late (Flink's numLateRecordsDropped): accepted readings, neither
aggregated nor late.

Input (key = site, Europe/Athens, TH1 and W1 every quarter-hour): `rst-lead` from 2020-10-05 00:15 to 2020-10-08
01:00; `rst-lag` the 5th (00:15 .. the 6th 00:00). The job runs until the lagging site's 5th is out, is killed, and
`rst-lag`'s 6th (plus a TH1 reading at the 7th 01:00 that closes it on its clock) is produced; the restored job must
then give the final aggregates worked out here: AggDay[TH1] (mean) and AggDay[W1] (sum) of the 5th-7th for the lead
site and of the 5th and 6th for the lagging one, with all 96 readings of each day.
"""

from __future__ import annotations

import json
import math
import sys
import urllib.request
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from iotpipe_stack.ports import free_ports

sys.path.insert(0, str(Path(__file__).parent))
from job_aggregates import finals, same

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.slow, pytest.mark.timeout(3600)]

ATHENS = ZoneInfo("Europe/Athens")
UNITS = {"TH1": "C", "W1": "l"}
Want = dict[str, tuple[float, int]]


def reading(site: str, local: datetime, sensor: str, value: float, seq: int) -> bytes:
    ts = local.replace(tzinfo=ATHENS).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps({"v": 1, "site": site, "sensor": sensor, "ts": ts, "value": value, "unit": UNITS[sensor],
                       "seq": seq}, separators=(",", ":")).encode()


def quarters(site: str, first: datetime, last: datetime, seq: int, want: Want) -> tuple[list[bytes], int]:
    """TH1 and W1 every quarter-hour from `first` to `last` (local); adds the days' aggregates to `want`."""
    out: list[bytes] = []
    values: dict[tuple[str, date], list[float]] = defaultdict(list)
    at = first
    while at <= last:
        seq += 1
        day = (at - timedelta(minutes=1)).date()  # (D 00:00, D+1 00:00]: midnight closes the previous day
        for sensor, value in (("TH1", 18.0 + seq % 7), ("W1", float(seq % 5))):
            out.append(reading(site, at, sensor, value, seq))
            values[(sensor, day)].append(value)
        at += timedelta(minutes=15)
    for (sensor, day), vals in values.items():
        total = math.fsum(vals)
        want[f"{site}/AggDay[{sensor}]/{day}"] = (total / len(vals) if sensor == "TH1" else total, len(vals))
    return out, seq


def subset(got: Want, want: Want) -> Want:
    return {k: got[k] for k in want if k in got}


def dropped_as_late(port: int) -> str:
    """Flink's own count of rows its window operators dropped as late (the evidence of the old bug)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    except OSError as exc:
        return f"(metrics: {exc})"
    return "; ".join(line for line in text.splitlines() if "numLateRecordsDropped" in line and
                     not line.startswith("#"))


def test_a_restore_keeps_the_readings_of_a_lagging_site(job_kit: Any, unique_name: Any) -> None:
    prefix = unique_name("rst")
    topics = job_kit.create_topics(prefix, readings_partitions=1)
    want: Want = {}
    lead, _ = quarters("rst-lead", datetime(2020, 10, 5, 0, 15), datetime(2020, 10, 8, 1), 0, want)
    lag_5th, seq = quarters("rst-lag", datetime(2020, 10, 5, 0, 15), datetime(2020, 10, 6), 0, want)
    lag_6th, seq = quarters("rst-lag", datetime(2020, 10, 6, 0, 15), datetime(2020, 10, 7), seq, want)
    lag_6th.append(reading("rst-lag", datetime(2020, 10, 7, 1), "TH1", 20.0, seq + 1))  # its clock passes the 6th
    want_5th = {k: v for k, v in want.items() if k.startswith("rst-lag/") and k.endswith("2020-10-05")}
    for sensor in UNITS:
        del want[f"rst-lead/AggDay[{sensor}]/2020-10-08"]  # the 8th has not ended on any clock
    job_kit.produce(topics.readings, [(b"rst-lead", m) for m in lead] + [(b"rst-lag", m) for m in lag_5th])
    first = job_kit.start_job(prefix, "rst-0")
    job_kit.wait_until(lambda: same(subset(finals(job_kit, topics.aggregates), want_5th), want_5th), first, 2400,
                       "the lagging site's 5th", lambda: f"got {finals(job_kit, topics.aggregates)}")
    checkpoints = job_kit.tmp / "home" / "stream_job" / "checkpoints" / prefix
    assert list(checkpoints.glob("*/chk-*/_metadata")), "no checkpoint retained before the kill"
    first.kill()

    job_kit.produce(topics.readings, [(b"rst-lag", m) for m in lag_6th])
    (port,) = free_ports(1)
    job = job_kit.start_job(prefix, "rst-1", metrics_port=str(port))
    job_kit.wait_until(lambda: same(finals(job_kit, topics.aggregates), want), job, 1200,
                       "the final aggregates after the restore",
                       lambda: f"got {finals(job_kit, topics.aggregates)}, want {want}; {dropped_as_late(port)}")
    assert "restoring from" in Path(job.log).read_text()
    assert job.terminate() == 0, job.log_tail()
