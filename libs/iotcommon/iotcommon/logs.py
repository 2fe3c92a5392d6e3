"""One logging setup for every service: text lines for people, or one JSON object per line for log pipelines.

    @dataclass(frozen=True)
    class SyncConfig:
        log_level: str = log_level_setting()        # IOTPIPE_LOG_LEVEL / --log-level: DEBUG | INFO | WARNING | ERROR
        log_format: str = log_format_setting()      # IOTPIPE_LOG_FORMAT / --log-format: text | json

    logs.setup(config.log_level, config.log_format)

A JSON line has the keys ``time`` (UTC, ISO 8601 with milliseconds and ``Z``), ``level``, ``logger`` and ``message``,
plus ``exception`` (the formatted traceback) when there is one. Standard library only.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from iotcommon.config import setting

FORMATS = ("text", "json")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def log_level_setting(help_text: str = "log level") -> Any:
    """The `log_level` field of a service's config: IOTPIPE_LOG_LEVEL / --log-level, INFO by default."""
    return setting("INFO", help_text, env="IOTPIPE_LOG_LEVEL", choices=LEVELS)


def log_format_setting() -> Any:
    """The `log_format` field of a service's config: IOTPIPE_LOG_FORMAT / --log-format, text (default) or json."""
    return setting("text", "log format: text lines, or json (one JSON object per line, for log pipelines)",
                   env="IOTPIPE_LOG_FORMAT", choices=FORMATS)  # fmt: skip


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object on one line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, tz=UTC)
        entry: dict[str, object] = {
            "time": stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(fmt: str) -> logging.Formatter:
    """The formatter of a log format name ('text' or 'json')."""
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return logging.Formatter(TEXT_FORMAT)
    raise ValueError(f"unknown log format {fmt!r}: expected one of {', '.join(FORMATS)}")


def setup(level: str, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Configure the root logger once, like logging.basicConfig: nothing changes if it already has a handler."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(formatter(fmt))
    logging.basicConfig(level=level, handlers=[handler])
