"""`iotpipe`: the local stack CLI.

iotpipe local install             fetch jars + create .venv-flink (cached; no network when done)
iotpipe local up                  start Kafka, HBase, Thrift; check the Flink runtime; wait until ready
iotpipe local status [--json]     what runs where (exit 0 = all ready, 3 = not all ready; a pipeline process
                                  without a readiness probe shows as "alive")
iotpipe local logs [NAME] [-n N] [-f]
iotpipe local down [--wipe]       stop every process of this home (--wipe also deletes data and checkpoints)
iotpipe run [--detach]            up + the pipeline's own processes (pipeline.py); foreground until Ctrl-C/SIGTERM
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from types import FrameType

from iotcommon.errors import ConfigError, StackError
from iotpipe_stack import pipeline, pipeline_status, supervisor
from iotpipe_stack.settings import SETTINGS, StackSettings, resolve
from iotpipe_stack.stack import SERVICES, LocalStack
from iotpipe_stack.status_rows import format_status, status_json

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_READY = 0, 1, 2, 3


def _add_settings(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("stack settings (flag > env var > default)")
    for s in SETTINGS:
        g.add_argument(
            "--" + s.field.replace("_", "-"), dest=s.field, default=None, metavar="VALUE",
            help=f"{s.help} [env {s.env}, default {s.default}]",
        )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="iotpipe", description="Run iotpipe's real local stack (Kafka, HBase+Thrift, PyFlink) on 127.0.0.1."
    )
    top = parser.add_subparsers(dest="command", required=True)

    local = top.add_parser("local", help="manage the local stack")
    sub = local.add_subparsers(dest="action", required=True)
    p = sub.add_parser("install", help="fetch the jars and create .venv-flink (cached)")
    _add_settings(p)
    p = sub.add_parser("up", help="start the stack and wait until everything is ready (idempotent)")
    p.add_argument("--no-flink", action="store_true", help="skip the PyFlink runtime check/install")
    _add_settings(p)
    p = sub.add_parser("down", help="stop every process of this stack home")
    p.add_argument("--wipe", action="store_true",
                   help="also delete data, configs and the stream job's checkpoints under the home")
    _add_settings(p)
    p = sub.add_parser("status", help="what runs where; exit 0 if all ready, 3 if not")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_settings(p)
    p = sub.add_parser("logs", help="print the last lines of a component's log (all components if none given)")
    p.add_argument("component", nargs="?", help="kafka, hbase, thrift or a pipeline process")
    p.add_argument("-n", "--lines", type=int, default=40, help="lines to print (default 40)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new lines (Ctrl-C to stop)")
    _add_settings(p)

    p = top.add_parser("run", help="bring the stack up, start the pipeline processes, run until Ctrl-C/SIGTERM")
    p.add_argument("--detach", action="store_true", help="return once everything is ready (stop: iotpipe local down)")
    _add_settings(p)
    return parser


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> StackSettings:
    return resolve(environ, {s.field: getattr(args, s.field, None) for s in SETTINGS})


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    raise _Stop(signal.Signals(signum).name)


def cmd_logs(stack: LocalStack, component: str | None, lines: int, follow: bool) -> int:
    names = [component] if component else stack.process_names()
    for name in names:
        log = stack.files(name).log_file
        if not log.exists():
            if component:
                print(f"no log for {name!r} at {log}", file=sys.stderr)
                return EXIT_ERROR
            continue
        if not component:
            print(f"==> {log} <==")
        print(supervisor.tail(log, lines))
    if follow and component:
        log = stack.files(component).log_file
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            try:
                while True:
                    chunk = fh.read()
                    if chunk:
                        sys.stdout.write(chunk.decode("utf-8", "replace"))
                        sys.stdout.flush()
                    else:
                        time.sleep(0.5)
            except KeyboardInterrupt:
                pass
    return EXIT_OK


def cmd_run(stack: LocalStack, detach: bool) -> int:
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    names: list[str] = []
    try:
        stack.up()
        names = stack.start_pipeline(pipeline.PROCESSES)
        print(format_status(pipeline_status.probed(stack.status(flink=False), pipeline.PROCESSES, stack.info)))
        print(f"iotpipe is up: Kafka {stack.s.bootstrap}, HBase Thrift {stack.s.host}:{stack.s.thrift_port}, "
              f"logs in {stack.s.logs_dir}")  # fmt: skip
        info = stack.info()
        for proc in pipeline.PROCESSES:
            if proc.url is not None:
                print(f"{proc.name}: open {proc.url(info)}", flush=True)
        if detach:
            print("detached; stop with `make stop` (iotpipe local down)")
            return EXIT_OK
        print("running in the foreground; Ctrl-C (or SIGTERM, or `make stop`) stops everything", flush=True)
        watched = [*SERVICES, *names]
        while True:
            dead = stack.dead(watched)
            if dead:
                if not stack.s.run_dir.exists() or all(not stack.files(n).pid_file.exists() for n in dead):
                    print("the stack was stopped from outside (iotpipe local down); exiting", flush=True)
                    return EXIT_OK
                raise stack.died_error(dead[0])
            time.sleep(1.0)
    except _Stop as e:
        print(f"received {e}; stopping everything", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.down()
        return EXIT_OK
    except StackError:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if not detach:
            stack.down()
        raise


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = settings_from(args, os.environ if environ is None else environ)
    except ConfigError as e:
        print(f"iotpipe: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.command == "run":
            return cmd_run(LocalStack.attach(settings), args.detach)
        stack = LocalStack.attach(settings)
        if args.action == "install":
            inst = stack.install()
            print(f"java {inst.java.major} at {inst.java.home}")
            print(f"kafka jars {inst.kafka_lib}\nhbase jars {inst.hbase_lib}\nconnector {inst.connector_jar}")
            print(f"pyflink python {inst.flink_python}")
            return EXIT_OK
        if args.action == "up":
            stack.up(flink=not args.no_flink)
            print(format_status(stack.status(flink=not args.no_flink)))
            return EXIT_OK
        if args.action == "down":
            stopped = stack.down(wipe=args.wipe)
            print(f"stopped: {', '.join(stopped) if stopped else 'nothing was running'}")
            return EXIT_OK
        if args.action == "status":
            rows = pipeline_status.probed(stack.status(), pipeline.PROCESSES, stack.info)
            print(json.dumps(status_json(rows), default=str) if args.json else format_status(rows))
            return EXIT_OK if pipeline_status.all_up(rows) else EXIT_NOT_READY
        if args.action == "logs":
            return cmd_logs(stack, args.component, args.lines, args.follow)
    except StackError as e:
        print(f"iotpipe: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
    parser.error("unknown command")
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
