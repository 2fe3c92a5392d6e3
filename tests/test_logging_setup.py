"""One logging setup (iotcommon.logs) for every service: IOTPIPE_LOG_FORMAT=json makes each log line a JSON object."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hbase_sync.config import SyncConfig
from iot_simulators.config import SimConfig
from iotcommon.config import load
from stream_job.config import StreamJobConfig
from ws_bridge.config import BridgeConfig
from ws_bridge.demo_feed import FeedConfig

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ["simulators/iot_simulators", "services/hbase_sync/hbase_sync", "services/stream_job/stream_job",
            "services/ws_bridge/ws_bridge", "operator/iot_operator", "stack/iotpipe_stack"]  # fmt: skip


@pytest.mark.parametrize("config", [SyncConfig, SimConfig, StreamJobConfig, BridgeConfig, FeedConfig])
def test_every_service_reads_the_log_format_from_env_and_flag(config: Any) -> None:
    assert load(config, [], {}).log_format == "text"
    assert load(config, [], {"IOTPIPE_LOG_FORMAT": "json"}).log_format == "json"
    assert load(config, ["--log-format", "text"], {"IOTPIPE_LOG_FORMAT": "json"}).log_format == "text"


def test_no_service_configures_logging_on_its_own() -> None:
    copies = [str(p.relative_to(REPO_ROOT)) for pkg in PACKAGES for p in (REPO_ROOT / pkg).rglob("*.py")
              if re.search(r"logging\.basicConfig\(", p.read_text(encoding="utf-8"))]  # fmt: skip
    assert copies == [], "use iotcommon.logs.setup"


def test_the_sync_worker_logs_json_lines() -> None:
    """The real entrypoint: its first log line (the settings it starts with) is a JSON object; then SIGTERM."""
    env = {**os.environ, "IOTPIPE_LOG_FORMAT": "json", "IOTPIPE_KAFKA_BOOTSTRAP": "127.0.0.1:9",
           "IOTPIPE_HBASE_HOST": "127.0.0.1", "IOTPIPE_HBASE_PORT": "9", "IOTPIPE_SYNC_HTTP_PORT": "0"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "-m", "hbase_sync"], env=env, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)  # fmt: skip
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    entry = json.loads(first)
    assert entry["logger"].startswith("hbase_sync") and entry["level"] == "INFO"
    assert entry["message"].startswith("starting with ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])
