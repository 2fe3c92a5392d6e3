"""A job restored from a checkpoint whose state it cannot read stops by itself (issue 12), against real Kafka + Flink.

The JobManager accepts the checkpoint (its `_metadata` is intact) but every TaskManager restore of its state fails:
the test truncates the checkpoint's state files, as a corrupt or half-copied checkpoint would be. Flink's restart
strategy would restore the same checkpoint forever; the job must instead cancel itself, name the checkpoint and the
way out (`--restore none`), and exit 2. The restore guard's decision itself is unit-tested in
`test_job_restore_guard_unit.py`.

The other side: a restored job whose failures are not state restores (Kafka down while it restores a good checkpoint)
keeps Flink's restart strategy and recovers once Kafka is back.
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from iotpipe_stack.ports import free_ports

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.slow, pytest.mark.timeout(3600)]

# Every piece of state in a file of its own (not inlined into _metadata), so that it can be made unreadable.
ALL_STATE_IN_FILES = "execution.checkpointing.data-inline-threshold=0 b"
FAST_KAFKA_TIMEOUTS = "request.timeout.ms=8000;default.api.timeout.ms=10000"


def readings(site: str, first: datetime, count: int) -> list[bytes]:
    out = []
    for i in range(count):
        ts = (first + timedelta(minutes=15 * i)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append(json.dumps({"v": 1, "site": site, "sensor": "TH1", "ts": ts, "value": 20.0 + i % 5, "unit": "C",
                               "seq": i + 1}, separators=(",", ":")).encode())
    return out


def test_a_checkpoint_whose_state_cannot_be_restored_stops_the_job_with_exit_2(job_kit: Any, unique_name: Any) -> None:
    prefix = unique_name("rgd")
    topics = job_kit.create_topics(prefix, readings_partitions=1)
    sent = readings("rgd-site", datetime(2020, 10, 5, tzinfo=UTC), 2 * 96)
    job_kit.produce(topics.readings, [(b"rgd-site", m) for m in sent])

    first = job_kit.start_job(prefix, "rgd-0", flink_options=ALL_STATE_IN_FILES)
    job_kit.wait_until(lambda: len(job_kit.read_all(topics.raw)) == len(sent), first, 2400,
                       "every reading copied to .raw (a checkpoint committed it)")
    assert first.terminate() == 0, first.log_tail()

    checkpoints = job_kit.tmp / "home" / "stream_job" / "checkpoints" / prefix
    retained = [meta.parent for meta in checkpoints.glob("*/chk-*/_metadata")]
    assert retained, "no checkpoint retained after the cancel"
    state_files = [f for chk in retained for f in chk.rglob("*") if f.is_file() and f.name != "_metadata"]
    assert state_files, f"no state files beside _metadata in {retained}"
    for f in state_files:  # whichever retained checkpoint the job picks, its state cannot be read
        f.write_bytes(b"")

    job = job_kit.start_job(prefix, "rgd-1")  # IOTPIPE_RESTORE=latest (the default)
    try:
        code = job.proc.wait(timeout=1800)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the job still runs 30 min after restoring a checkpoint it cannot read:\n{job.log_tail()}")
    log = Path(job.log).read_text(errors="replace")
    restored = re.search(r"restoring from (\S+)", log)
    assert restored, job.log_tail()
    assert code == 2, job.log_tail()
    assert f"cannot restore the state of the checkpoint {restored.group(1)}" in log, job.log_tail()
    assert "--restore none (IOTPIPE_RESTORE=none)" in log, job.log_tail()
    assert "without the open days' state" in log, job.log_tail()
    job.terminate()


def rest(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


def failures_seen(port: int) -> list[str]:
    """The restored job's failures so far (Flink's exception history), each its first stack trace line."""
    try:
        jobs = rest(port, "/jobs")["jobs"]
        out: list[str] = []
        for job in jobs:
            history = rest(port, f"/jobs/{job['id']}/exceptions?maxExceptions=20")["exceptionHistory"]["entries"]
            out += [entry["stacktrace"].splitlines()[0] for entry in history]
        return out
    except OSError:
        return []


def test_a_restored_job_with_kafka_down_keeps_restarting_and_recovers(job_kit: Any, unique_name: Any,
                                                                      kafka_service: Any) -> None:
    prefix = unique_name("rgk")
    topics = job_kit.create_topics(prefix, readings_partitions=1)
    sent = readings("rgk-site", datetime(2020, 10, 5, tzinfo=UTC), 96)
    job_kit.produce(topics.readings, [(b"rgk-site", m) for m in sent])
    first = job_kit.start_job(prefix, "rgk-0")
    job_kit.wait_until(lambda: len(job_kit.read_all(topics.raw)) == len(sent), first, 2400,
                       "every reading copied to .raw (a checkpoint committed it)")
    assert first.terminate() == 0, first.log_tail()

    (port,) = free_ports(1)
    kafka_service.stop()
    try:
        # the test reads the job's failures on this REST port (the Flink options override the port the job picks);
        # 10 s Kafka client timeouts instead of 60 s: the same failures, a few times faster (IOTPIPE_KAFKA_OPTIONS)
        job = job_kit.start_job(prefix, "rgk-1", flink_options=f"rest.bind-port={port}",
                                kafka_options=FAST_KAFKA_TIMEOUTS)
        job_kit.wait_until(lambda: len(failures_seen(port)) > 3, job, 1800,
                           "more failures of the restored job than the restore guard's 3, with Kafka down",
                           lambda: f"failures: {failures_seen(port)}")
    finally:
        kafka_service.start()
    more = readings("rgk-site", datetime(2020, 10, 6, tzinfo=UTC), 96)
    job_kit.produce(topics.readings, [(b"rgk-site", m) for m in more])
    job_kit.wait_until(lambda: len(job_kit.read_all(topics.raw)) == len(sent) + len(more), job, 2400,
                       "the readings produced after Kafka came back, copied to .raw",
                       lambda: f"failures: {failures_seen(port)}")
    log = Path(job.log).read_text(errors="replace")
    assert "cannot restore the state" not in log, job.log_tail()
    assert job.terminate() == 0, job.log_tail()
