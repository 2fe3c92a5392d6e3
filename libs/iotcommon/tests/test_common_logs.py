"""iotcommon.logs: one setup for every service; the json format writes one parseable JSON object per line."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from iotcommon import logs
from iotcommon.config import load
from iotcommon.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[3]


def _record(msg: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError("boom")
        except ValueError:
            exc_info = sys.exc_info()
    record = logging.LogRecord("hbase_sync.worker", logging.WARNING, __file__, 1, msg, args, exc_info)
    record.created = 1_774_000_000.25  # 2026-03-20T09:46:40.250Z
    return record


def test_a_json_line_has_time_level_logger_and_the_formatted_message() -> None:
    line = logs.JsonFormatter().format(_record("flushed %d rows to %s", 3, "t1"))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2026-03-20T09:46:40.250Z",
        "level": "WARNING",
        "logger": "hbase_sync.worker",
        "message": "flushed 3 rows to t1",
    }


def test_a_multiline_message_and_an_exception_stay_on_one_json_line() -> None:
    line = logs.JsonFormatter().format(_record("first\nsecond \"quoted\" ünï", exc=True))
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "first\nsecond \"quoted\" ünï"
    assert entry["exception"].startswith("Traceback") and entry["exception"].endswith("ValueError: boom")


def test_text_is_the_familiar_line_and_an_unknown_format_is_refused() -> None:
    assert logs.formatter("text").format(_record("hi")).endswith(" WARNING hbase_sync.worker: hi")
    with pytest.raises(ValueError, match="xml"):
        logs.formatter("xml")


@dataclass(frozen=True)
class _Config:
    log_level: str = logs.log_level_setting()
    log_format: str = logs.log_format_setting()


def test_the_settings_read_the_env_vars_and_the_flags_override_them() -> None:
    assert (load(_Config, [], {}).log_level, load(_Config, [], {}).log_format) == ("INFO", "text")
    assert load(_Config, [], {"IOTPIPE_LOG_FORMAT": "json"}).log_format == "json"
    assert load(_Config, ["--log-format", "text"], {"IOTPIPE_LOG_FORMAT": "json"}).log_format == "text"
    assert load(_Config, [], {"IOTPIPE_LOG_LEVEL": "ERROR"}).log_level == "ERROR"
    assert load(_Config, ["--log-level", "DEBUG"], {"IOTPIPE_LOG_LEVEL": "ERROR"}).log_level == "DEBUG"
    for bad in ({"IOTPIPE_LOG_FORMAT": "yaml"}, {"IOTPIPE_LOG_LEVEL": "TRACE"}):
        with pytest.raises(ConfigError):
            load(_Config, [], bad)


def test_setup_with_json_makes_every_stderr_line_a_json_object() -> None:
    code = (
        "import logging; from iotcommon import logs\n"
        "logs.setup('INFO', 'json')\n"
        "logging.getLogger('a').info('one %s', 1)\n"
        "logging.getLogger('b.c').debug('hidden')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    logging.getLogger('b').exception('two')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                          env={"PYTHONPATH": str(REPO_ROOT / "libs" / "iotcommon")})  # fmt: skip
    entries = [json.loads(line) for line in proc.stderr.splitlines()]
    assert [(e["logger"], e["level"], e["message"]) for e in entries] == [("a", "INFO", "one 1"), ("b", "ERROR", "two")]
    assert "ZeroDivisionError" in entries[1]["exception"]


def test_setup_leaves_a_configured_root_logger_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    if not before:  # pytest's capture normally installs one; make sure there is one
        root.addHandler(logging.StreamHandler(io.StringIO()))
    kept = list(root.handlers)
    try:
        logs.setup("DEBUG", "json", io.StringIO())
        assert root.handlers == kept
    finally:
        for h in root.handlers:
            if h not in before:
                root.removeHandler(h)
