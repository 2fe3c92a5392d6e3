"""The entrypoint's contract: --help, env vars with defaults overridden by flags, exit code 2 on bad options."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hbase_sync.cli import main
from hbase_sync.config import SyncConfig
from iotcommon.config import load


def test_help_lists_every_setting_with_its_env_var() -> None:
    out = subprocess.run([sys.executable, "-m", "hbase_sync", "--help"], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    for env in ("IOTPIPE_KAFKA_BOOTSTRAP", "IOTPIPE_TOPIC_PREFIX", "IOTPIPE_HBASE_HOST", "IOTPIPE_HBASE_PORT",
                "IOTPIPE_TABLE_PREFIX", "IOTPIPE_SYNC_BATCH_SIZE", "IOTPIPE_SYNC_TTL_RAW", "IOTPIPE_SYNC_HTTP_PORT"):
        assert env in out


@pytest.mark.parametrize("argv", [["--batch-size", "0"], ["--hbase-port", "x"], ["--assignment", "sticky"]])
def test_bad_settings_exit_with_code_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "hbase-sync:" in capsys.readouterr().err


def test_unknown_flags_exit_with_code_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["--no-such-flag"])
    assert info.value.code == 2


def test_flags_override_env_and_the_shared_names_are_used() -> None:
    env = {"IOTPIPE_KAFKA_BOOTSTRAP": "k:1", "IOTPIPE_TABLE_PREFIX": "p7", "IOTPIPE_SYNC_TTL_LATE": "60",
           "IOTPIPE_TOPIC_PREFIX": "pipe"}
    config = load(SyncConfig, ["--table-prefix", "p8"], env)
    assert (config.kafka_bootstrap, config.table_prefix, config.ttls["late"]) == ("k:1", "p8", 60)
    assert config.group_id == "pipe.hbase-sync"
    assert config.topics.raw == "pipe.raw"
