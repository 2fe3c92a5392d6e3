"""One config story for every service: a frozen dataclass whose fields are settings.

Each field has a documented default, an env var (``IOTPIPE_<FIELD>`` unless named otherwise) and a ``--flag``.
Precedence: flag > env var > default. ``load`` builds the ``--help`` text from the same declarations, so the
documentation cannot drift from the code.

    @dataclass(frozen=True)
    class SyncConfig:
        bootstrap: str = setting("127.0.0.1:9092", "Kafka bootstrap servers", env="IOTPIPE_KAFKA_BOOTSTRAP")
        batch_size: int = setting(5000, "mutations per HBase flush", minimum=1)

    config = load(SyncConfig, argv, os.environ, prog="hbase-sync", description="...")
"""

from __future__ import annotations

import argparse
import dataclasses
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from iotcommon.errors import ConfigError

T = TypeVar("T")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def setting(
    default: Any,
    help: str,
    *,
    env: str | None = None,
    choices: Sequence[str] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    secret: bool = False,
) -> Any:
    """Declare one setting of a config dataclass."""
    meta = {"help": help, "env": env, "choices": choices, "minimum": minimum, "maximum": maximum, "secret": secret}
    return dataclasses.field(default=default, metadata=meta)


def env_name(field: dataclasses.Field[Any]) -> str:
    """The env var that sets this field."""
    return str(field.metadata.get("env") or f"IOTPIPE_{field.name.upper()}")


def _cast(kind: Any, raw: str, where: str) -> Any:
    try:
        if kind is bool:
            low = raw.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            msg = f"expected one of {sorted(_TRUE | _FALSE - {''})}"
            raise ValueError(msg)
        if kind is int:
            return int(raw)
        if kind is float:
            return float(raw)
        if kind in (str, "str"):
            return raw
        if typing.get_origin(kind) is tuple:
            return tuple(part.strip() for part in raw.split(",") if part.strip())
    except ValueError as exc:
        msg = f"{where}: cannot read {raw!r} as {getattr(kind, '__name__', kind)} ({exc})"
        raise ConfigError(msg) from exc
    # Optional[X]: X | None
    args = [a for a in typing.get_args(kind) if a is not type(None)]
    if len(args) == 1:
        return None if raw == "" else _cast(args[0], raw, where)
    msg = f"{where}: unsupported setting type {kind!r}"
    raise ConfigError(msg)


def _check(field: dataclasses.Field[Any], value: Any, where: str) -> None:
    meta = field.metadata
    if meta.get("choices") and value not in meta["choices"]:
        msg = f"{where}: {value!r} is not one of {', '.join(meta['choices'])}"
        raise ConfigError(msg)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if meta.get("minimum") is not None and value < meta["minimum"]:
            msg = f"{where}: {value} is below the minimum {meta['minimum']}"
            raise ConfigError(msg)
        if meta.get("maximum") is not None and value > meta["maximum"]:
            msg = f"{where}: {value} is above the maximum {meta['maximum']}"
            raise ConfigError(msg)


def build_parser(cls: type[Any], prog: str | None = None, description: str | None = None) -> argparse.ArgumentParser:
    """An argparse parser with one ``--flag`` per setting; defaults shown as env var + value."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        if not field.metadata.get("help"):
            continue
        kind = hints[field.name]
        shown = "***" if field.metadata.get("secret") and field.default else field.default
        if isinstance(shown, tuple):
            shown = ",".join(shown)
        help_text = f"{field.metadata['help']} [env {env_name(field)}; default {shown!r}]"
        flag = "--" + field.name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, dest=field.name, default=None, action=argparse.BooleanOptionalAction,
                                help=help_text)
        else:
            parser.add_argument(flag, dest=field.name, default=None, metavar=field.name.upper(), help=help_text)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def load(
    cls: type[T],
    argv: Sequence[str] | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> T:
    """Read a config dataclass from flags, then env vars, then defaults. Raises ConfigError on bad values.

    ``--help`` prints and exits 0; unknown flags make argparse exit with code 2.
    """
    environ = {} if environ is None else environ
    parser = build_parser(cls, prog, description)
    parsed = parser.parse_args(list(argv) if argv is not None else [])
    return from_values(cls, vars(parsed), environ)


def from_values(cls: type[T], flags: Mapping[str, Any], environ: Mapping[str, str]) -> T:
    """Resolve every field (flag string > env var > default), cast and check it."""
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        kind = hints[field.name]
        flag_value = flags.get(field.name)
        name = env_name(field)
        if flag_value is not None:
            where = "--" + field.name.replace("_", "-")
            value = flag_value if isinstance(flag_value, bool) else _cast(kind, str(flag_value), where)
        elif name in environ:
            where = name
            value = _cast(kind, environ[name], where)
        else:
            where = field.name
            value = field.default
        _check(field, value, where)
        values[field.name] = value
    return cls(**values)


def describe(config: Any) -> str:
    """One line with every setting, secrets masked: what a service logs at start."""
    parts = []
    for field in dataclasses.fields(config):
        value = getattr(config, field.name)
        if field.metadata.get("secret") and value:
            value = "***"
        parts.append(f"{field.name}={value}")
    return " ".join(parts)
