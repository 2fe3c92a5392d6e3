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
