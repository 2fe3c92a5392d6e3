"""The config loader: flag > env > default, casting, bounds, --help."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from iotcommon.config import describe, load, setting
from iotcommon.errors import ConfigError


@dataclass(frozen=True)
class Demo:
    bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers", env="IOTPIPE_KAFKA_BOOTSTRAP")
    batch_size: int = setting(500, "rows per flush", minimum=1)
    speed: float = setting(1.0, "speed factor", minimum=0)
    dry_run: bool = setting(False, "do nothing")
    mode: str = setting("a", "mode", choices=("a", "b"))
    token: str = setting("", "bearer token", secret=True)
    topics: tuple[str, ...] = setting(("x", "y"), "topics")


def test_precedence_flag_over_env_over_default() -> None:
    assert load(Demo, [], {}).batch_size == 500
    assert load(Demo, [], {"IOTPIPE_BATCH_SIZE": "7"}).batch_size == 7
    assert load(Demo, ["--batch-size", "9"], {"IOTPIPE_BATCH_SIZE": "7"}).batch_size == 9
    assert load(Demo, [], {"IOTPIPE_KAFKA_BOOTSTRAP": "h:1"}).bootstrap == "h:1"
    assert load(Demo, ["--dry-run"], {}).dry_run is True
    assert load(Demo, [], {"IOTPIPE_DRY_RUN": "yes"}).dry_run is True
    assert load(Demo, [], {"IOTPIPE_TOPICS": "a, b"}).topics == ("a", "b")


@pytest.mark.parametrize(
    ("argv", "env", "needle"),
    [
        (["--batch-size", "x"], {}, "--batch-size"),
        ([], {"IOTPIPE_BATCH_SIZE": "0"}, "minimum"),
        ([], {"IOTPIPE_MODE": "c"}, "not one of"),
        ([], {"IOTPIPE_DRY_RUN": "maybe"}, "IOTPIPE_DRY_RUN"),
    ],
)
def test_bad_values_say_what_to_fix(argv: list[str], env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load(Demo, argv, env)


def test_unknown_flag_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load(Demo, ["--nope"], {})
    assert info.value.code == 2


def test_help_lists_env_vars_and_masks_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        load(Demo, ["--help"], {}, prog="demo")
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "IOTPIPE_KAFKA_BOOTSTRAP" in out and "--batch-size" in out
    assert "s3cret" not in describe(load(Demo, [], {"IOTPIPE_TOKEN": "s3cret"}))
