"""Unit tests: the stream job's settings and the hints it gives for failures the user can fix."""

from __future__ import annotations

import pytest

from iotcommon.errors import ConfigError
from stream_job.config import failure_hint, load_config

FLINK_RESTORE_ERROR = (
    "org.apache.flink.runtime.client.JobInitializationException: Could not start the JobMaster.\n"
    "Caused by: java.lang.IllegalStateException: Failed to rollback to checkpoint/savepoint file:/x/chk-7. Cannot map "
    "checkpoint/savepoint state for operator 0a448493b4782967b150582570326227 to the new program, because the "
    "operator is not available in the new program."
)


def test_a_checkpoint_of_another_job_version_gets_a_fix_in_the_message() -> None:
    hint = failure_hint(FLINK_RESTORE_ERROR, "file:///x/chk-7")
    assert hint is not None
    assert "file:///x/chk-7" in hint
    assert "--restore none" in hint


def test_other_failures_and_fresh_starts_get_no_hint() -> None:
    assert failure_hint("java.lang.OutOfMemoryError: Java heap space", "file:///x/chk-7") is None
    assert failure_hint(FLINK_RESTORE_ERROR, None) is None


def test_settings_come_from_flags_over_env_and_bad_values_are_refused() -> None:
    config = load_config(["--restore", "none", "--parallelism", "2"], {"IOTPIPE_FLINK_PARALLELISM": "3"})
    assert (config.restore, config.parallelism) == ("none", 2)
    with pytest.raises((ConfigError, SystemExit)):
        load_config(["--parallelism", "0"], {})


def test_site_zones_are_checked_and_every_zone_must_align_with_the_batches() -> None:
    config = load_config(["--site-zones", "ny=America/New_York"], {"IOTPIPE_SITE_TZ": "Europe/Athens"})
    assert config.zones.name("ny") == "America/New_York"
    assert config.zones.name("other") == "Europe/Athens"
    with pytest.raises(ConfigError, match="IOTPIPE_SITE_ZONES"):
        load_config(["--site-zones", "ny=Mars/Olympus"], {})
    with pytest.raises(ConfigError, match="Asia/Kolkata"):  # UTC+5:30: 60-minute batches would straddle midnight
        load_config(["--site-zones", "in=Asia/Kolkata"], {})
    assert load_config(["--site-zones", "in=Asia/Kolkata", "--batch-window-min", "15"], {}).batch_window_min == 15


def test_bounded_with_a_checkpoint_to_restore_is_refused() -> None:
    with pytest.raises(ConfigError, match="FLINK-31006"):
        load_config(["--bounded", "--restore", "/some/chk-3"], {})
    assert load_config(["--bounded", "--restore", "none"], {}).bounded


def test_the_site_idle_limit_defaults_to_the_lateness() -> None:
    assert load_config([], {}).site_idle_ms == 172_800_000
    assert load_config(["--site-idle-s", "30"], {}).site_idle_ms == 30_000


def test_the_idle_limit_and_the_metrics_endpoint_are_on_by_default() -> None:
    config = load_config([], {})
    assert config.idle_timeout_ms == 30000  # an empty or silent partition holds first emissions back 30 s at most
    assert config.metrics_port == 9249  # Flink's Prometheus reporter
    off = load_config(["--idle-timeout-ms", "0"], {"IOTPIPE_METRICS_PORT": "0"})
    assert (off.idle_timeout_ms, off.metrics_port) == (0, 0)
    with pytest.raises(ConfigError):
        load_config(["--metrics-port", "70000"], {})


def test_kafka_options_reach_every_kafka_table_and_win_over_the_job_own() -> None:
    """IOTPIPE_KAFKA_OPTIONS (e.g. a secured cluster's security.protocol): on the source and every sink, once each,
    over the job's own client properties; a malformed entry is refused at start."""
    from stream_job import sql  # pure: SQL text only

    options = "security.protocol=SSL; linger.ms=5;max.partition.fetch.bytes=1"
    config = load_config([], {"IOTPIPE_KAFKA_OPTIONS": options})
    assert config.kafka_properties == {"security.protocol": "SSL", "linger.ms": "5", "max.partition.fetch.bytes": "1"}
    tables = [sql.source_ddl(config), *sql.sink_ddl(config)]
    assert len(tables) == 6
    for ddl in tables:
        assert ddl.count("'properties.security.protocol' = 'SSL'") == 1, ddl
        assert ddl.count("'properties.bootstrap.servers'") == 1, ddl
    assert "'properties.max.partition.fetch.bytes' = '1'" in tables[0]
    assert "131072" not in tables[0]
    for ddl in tables[1:]:
        assert "'properties.linger.ms' = '5'" in ddl and "'properties.linger.ms' = '20'" not in ddl, ddl
        assert "'properties.transaction.timeout.ms' = '600000'" in ddl, ddl
    assert "'properties.linger.ms'" not in sql.source_ddl(load_config([], {}))
    for bad in ("security.protocol", "=SSL", "Bad Key=1"):
        with pytest.raises(ConfigError, match="IOTPIPE_KAFKA_OPTIONS"):
            load_config([], {"IOTPIPE_KAFKA_OPTIONS": bad})
