"""`python -m iot_operator [settings] [-- kopf run options]`: check the settings, then run the operator under kopf.

Each setting is an env var (documented default) overridable by a flag; `--help` lists them. Invalid values exit with
code 2 before kopf starts. Everything after `--` goes to `kopf run` (default: --standalone --all-namespaces).
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Sequence

from iot_operator.config import DESCRIPTION, OperatorConfig
from iotcommon.config import env_name, load
from iotcommon.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    ours, kopf_args = (args[: args.index("--")], args[args.index("--") + 1:]) if "--" in args else (args, [])
    try:
        cfg = load(OperatorConfig, ours, os.environ, prog="python -m iot_operator",
                   description=f"{DESCRIPTION} Options after -- go to `kopf run`.")
    except ConfigError as exc:
        print(f"iot_operator: {exc}", file=sys.stderr)
        return 2
    env = dict(os.environ)
    for field in dataclasses.fields(cfg):
        value = getattr(cfg, field.name)
        env[env_name(field)] = str(value).lower() if isinstance(value, bool) else str(value)
    kopf_args = kopf_args or ["--standalone", "--all-namespaces"]
    kopf = [sys.executable, "-m", "kopf", "run", "-m", "iot_operator.handlers", *kopf_args]
    os.execve(sys.executable, kopf, env)  # noqa: S606 - replace this process: kopf gets the signals directly


if __name__ == "__main__":
    sys.exit(main())
