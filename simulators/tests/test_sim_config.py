"""Options: env vars and flags, the run plan derived from them, and exit code 2 on invalid ones (no Kafka needed)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from iot_simulators.cli import main
from iot_simulators.config import SimConfig, plan
from iot_simulators.late import LateRule
from iotcommon.config import load


def plan_of(argv: list[str], environ: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    environ = environ or {}
    return plan(load(SimConfig, argv, environ), environ)


def test_defaults_work_with_the_local_stack() -> None:
    cfg = load(SimConfig, [], {})
    assert cfg.bootstrap == "127.0.0.1:9092"
    p = plan(cfg, {})
    assert p.topic == "iotpipe.readings"
    assert p.site_numbers == [1]
    assert p.step_seconds == 1.0  # one 15-minute step per real second, as the original system
    assert p.stop is None
    assert p.timeline.start == datetime(2019, 12, 31, 22, 0, tzinfo=UTC)  # 2020-01-01 00:00 Athens
    assert p.late_rules == (LateRule(20, 192), LateRule(120, 960))


def test_shared_env_vars_and_flags() -> None:
    env = {"IOTPIPE_KAFKA_BOOTSTRAP": "k:1", "IOTPIPE_TOPIC_PREFIX": "p1", "IOTPIPE_SITE_TZ": "UTC",
           "IOTPIPE_SIM_SITES": "4", "IOTPIPE_SIM_SPEED": "max", "IOTPIPE_SIM_LATE": ""}
    p = plan_of([], env)
    assert p.topic == "p1.readings" and p.site_numbers == [1, 2, 3, 4] and p.step_seconds == 0
    assert p.late_rules == ()
    assert p.timeline.start == datetime(2020, 1, 1, tzinfo=UTC)
    assert plan_of(["--sites", "2", "--speed", "1800"], env).step_seconds == 0.5
    assert load(SimConfig, [], env).bootstrap == "k:1"


def test_replicas_take_disjoint_site_ranges() -> None:
    assert plan_of(["--sites", "10"], {"IOTPIPE_REPLICA_INDEX": "2"}).site_numbers == list(range(21, 31))
    assert plan_of(["--sites", "3", "--replica-index", "hostname"],
                   {"HOSTNAME": "sims-iotpipe-4"}).site_numbers == [13, 14, 15]
    assert plan_of(["--sites", "3", "--site-offset", "100"],
                   {"IOTPIPE_REPLICA_INDEX": "2"}).site_numbers == [101, 102, 103]


def test_end_of_run() -> None:
    assert plan_of(["--steps", "96"]).stop == 97  # steps 0 (the start) .. 96 (one day later)
    assert plan_of(["--until", "2020-01-02T00:00"]).stop == 97
    assert plan_of(["--until", "2020-01-01T22:00:00Z"]).stop == 97
    assert plan_of(["--until", "2020-01-02T00:00", "--steps", "10"]).stop == 11


@pytest.mark.parametrize("argv", [
    ["--sites", "0"],
    ["--sites", "many"],
    ["--speed", "fast"],
    ["--speed", "-3"],
    ["--start", "2020-01-01T00:07"],
    ["--start", "yesterday"],
    ["--site-tz", "Mars/Olympus"],
    ["--until", "2019-12-01T00:00"],
    ["--late", "20:2w"],
    ["--compression", "brotli"],
    ["--replica-index", "-1"],
    ["--replica-index", "hostname"],
    ["--steps", "-1"],
    ["--no-such-option"],
])
def test_invalid_options_exit_with_2_and_say_why(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    env = {"HOSTNAME": "laptop"}
    try:
        code = main(argv, env)
    except SystemExit as exc:  # argparse refuses unknown options itself, also with 2
        code = int(exc.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert err.strip()
    assert "Traceback" not in err


def test_help_lists_flags_and_env_vars(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"], {})
    assert info.value.code == 0
    out = capsys.readouterr().out
    for text in ("--sites", "IOTPIPE_SIM_SITES", "IOTPIPE_KAFKA_BOOTSTRAP", "IOTPIPE_REPLICA_INDEX", "--speed", "max"):
        assert text in out
