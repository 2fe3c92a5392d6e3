"""The entrypoint: --help, and exit code 2 with a reason on bad options."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ws_bridge", *args], capture_output=True, text=True, timeout=60,
                          check=False, env={"PATH": "/usr/bin:/bin"})


def test_help_lists_every_setting_with_its_env_var() -> None:
    result = run("--help")
    assert result.returncode == 0
    for env in ("IOTPIPE_KAFKA_BOOTSTRAP", "IOTPIPE_TOPIC_PREFIX", "IOTPIPE_HBASE_HOST", "IOTPIPE_TABLE_PREFIX",
                "IOTPIPE_BRIDGE_TOKEN", "IOTPIPE_BRIDGE_QUEUE_RECORDS", "IOTPIPE_SITE_ZONES",
                "IOTPIPE_BRIDGE_ALLOWED_ORIGINS", "IOTPIPE_BRIDGE_MAX_SITES", "IOTPIPE_BRIDGE_MAX_RESPONSE_BYTES",
                "IOTPIPE_SYNC_GROUP"):
        assert env in result.stdout


@pytest.mark.parametrize(("args", "reason"), [
    (("--port", "nope"), "--port"),
    (("--auth", "maybe"), "--auth"),
    (("--host", "0.0.0.0"), "IOTPIPE_BRIDGE_TOKEN"),
    (("--queue-records", "0"), "minimum"),
    (("--no-such-flag",), "unrecognized"),
    (("--allowed-origins", "evil.example"), "IOTPIPE_BRIDGE_ALLOWED_ORIGINS"),
    (("--site-zones", "site1=Mars/Olympus"), "IOTPIPE_SITE_ZONES"),
])
def test_bad_options_exit_2_with_a_reason(args: tuple[str, ...], reason: str) -> None:
    result = run(*args)
    assert result.returncode == 2
    assert reason in result.stderr


def test_the_sync_group_is_the_sync_workers_default_unless_named() -> None:
    from hbase_sync.config import SyncConfig
    from ws_bridge.config import BridgeConfig

    assert BridgeConfig(topic_prefix="p").sync_group_id == SyncConfig(topic_prefix="p").group_id == "p.hbase-sync"
    assert BridgeConfig(topic_prefix="p", sync_group="mine").sync_group_id == "mine"
