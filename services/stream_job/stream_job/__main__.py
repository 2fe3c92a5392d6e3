"""Entry point: ``python -m stream_job [--flags]`` (run with the PyFlink venv's python)."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from iotcommon import logs
from iotcommon.config import describe
from iotcommon.errors import ConfigError
from iotcommon.shutdown import stop_on_signals
from stream_job.config import (
    BOUNDED_RESTORE,
    checkpoint_path,
    failure_hint,
    find_connector_jar,
    latest_checkpoint,
    load_config,
)
from stream_job.restore_guard import (
    MIN_FAILURES,
    POLL_S,
    completed_checkpoints,
    failures,
    give_up_message,
    rest_port,
    verdict,
)
from stream_job.udf_jar import find_udf_jar

log = logging.getLogger("stream_job")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
        jars = [jar for jar in (find_connector_jar(config, os.environ), find_udf_jar(config.udf_jar, os.environ))
                if jar is not None]
    except ConfigError as exc:
        print(f"stream_job: {exc}", file=sys.stderr)
        return 2
    logs.setup(config.log_level, config.log_format)
    # PyFlink/Beam reconfigure the root logger when the job is built: keep our progress lines on our own handler
    handler = logging.StreamHandler()
    handler.setFormatter(logs.formatter(config.log_format))
    log.addHandler(handler)
    log.setLevel(config.log_level)
    log.propagate = False
    log.info("settings: %s", describe(config))

    remote = "://" in config.checkpoint_dir and not config.checkpoint_dir.startswith("file://")
    checkpoints = config.checkpoint_dir if remote else checkpoint_path(config, os.environ).absolute().as_uri()
    restore_from: str | None = None
    if config.restore not in ("latest", "none"):
        restore_from = config.restore
        if "://" not in restore_from and not (Path(restore_from) / "_metadata").is_file():
            print(f"stream_job: --restore {config.restore}: no _metadata there", file=sys.stderr)
            return 2
    elif config.restore == "latest" and not remote:
        local = checkpoint_path(config, os.environ)
        local.mkdir(parents=True, exist_ok=True)
        found = latest_checkpoint(local)
        restore_from = found.absolute().as_uri() if found else None
    # remote checkpoint storage (s3://, hdfs://): recovery is the deployment's business (Flink HA / the operator)
    if config.bounded and restore_from is not None:
        print(f"stream_job: {BOUNDED_RESTORE} (found {restore_from})", file=sys.stderr)
        return 2
    log.info("checkpoints in %s; %s", checkpoints,
             f"restoring from {restore_from}" if restore_from else "starting without state")

    from stream_job.job import (  # PyFlink: imported only after the options are valid
        build,
        cluster_settings,
        flink_configuration,
        prepare_gateway,
    )

    prepare_gateway(config)

    stop = stop_on_signals(lambda name: log.info("%s: cancelling the job (checkpoints are retained)", name))

    # The restore guard reads the job's failures from Flink's REST API: locally the MiniCluster's, on a loopback port
    # chosen here; inside a Flink cluster (PythonDriver: the Kubernetes JobManager) that cluster's own REST port.
    in_cluster = "PYFLINK_GATEWAY_PORT" in os.environ
    local_rest = free_loopback_port() if restore_from is not None and not in_cluster else None
    try:
        flink_conf = flink_configuration(config, checkpoints, restore_from, jars, rest_port=local_rest)
        result = build(config, flink_conf, sys.executable)
    except Exception as exc:  # py4j carries the Java exception; a restore failure can surface here or later
        hint = failure_hint(str(exc), restore_from)
        if hint is None:
            raise
        log.error("cannot start: %s", hint)
        return 2
    client = result.get_job_client()
    job_id = client.get_job_id() if client is not None else "?"
    log.info("job %s running: %s.readings -> raw, aggregates, late, deadletter", job_id, config.topic_prefix)
    outcome: list[BaseException | None] = []

    def wait_for_job() -> None:
        try:
            result.wait()
            outcome.append(None)
        except BaseException as exc:  # the job failed: py4j carries the Java exception
            outcome.append(exc)
        finally:
            stop.set()

    threading.Thread(target=wait_for_job, name="job-waiter", daemon=True).start()
    gave_up: list[str] = []
    if restore_from is not None and client is not None:
        try:
            settings = cluster_settings() if in_cluster else {k: flink_conf.get_string(k, "")
                                                             for k in ("rest.bind-port", "rest.port")}
        except Exception as exc:  # py4j: a cluster without a readable configuration must not fail the running job
            settings = {}
            log.warning("restore guard: cannot read the Flink configuration: %s", exc)
        port = rest_port(settings)
        if port is None:
            log.warning("restore guard off: no single REST port in the Flink configuration (%s)", settings)
        else:
            base = f"http://127.0.0.1:{port}/jobs/{job_id}"
            log.info("restore guard: watching %s until a checkpoint completes", base)
            threading.Thread(target=guard_restore, args=(base, restore_from, stop, gave_up.append, fetch_json),
                             name="restore-guard", daemon=True).start()
    stop.wait()
    if gave_up:
        log.error("job %s: %s", job_id, gave_up[0])
        if client is not None and not outcome:
            try:
                client.cancel().result()
            except Exception as exc:  # py4j: the job may have ended meanwhile
                log.warning("job %s: cancel: %s", job_id, exc)
        log.info("job %s cancelled (exit 2)", job_id)
        return 2
    if outcome:
        if outcome[0] is None:
            log.info("job %s finished", job_id)
            return 0
        hint = failure_hint(str(outcome[0]), restore_from)
        if hint is not None:
            log.error("job %s cannot start: %s", job_id, hint)
            return 2
        log.error("job %s failed: %s", job_id, outcome[0])
        return 1
    if client is not None:
        client.cancel().result()
    log.info("job %s cancelled", job_id)
    return 0


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def fetch_json(url: str) -> Any:
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"not a loopback Flink REST URL: {url}")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback http, checked above)
        return json.load(response)


def guard_restore(base: str, restore_from: str, stop: threading.Event, give_up: Callable[[str], None],
                  get: Callable[[str], Any]) -> None:
    """Poll the restored job's failures and checkpoints (restore_guard.verdict) until a checkpoint completes or the
    job stops; when every recent failure is a failure to restore the checkpoint's state, report and stop."""
    unreachable = 0
    while not stop.wait(POLL_S):
        try:
            completed = completed_checkpoints(get(f"{base}/checkpoints"))
            recent = failures(get(f"{base}/exceptions?maxExceptions={MIN_FAILURES}")) if not completed else []
        except (OSError, ValueError) as exc:  # REST not up yet, job not known yet, or a half-written answer
            unreachable += 1
            if unreachable == 30:
                log.warning("restore guard: %s unreachable for a minute (%s); still trying", base, exc)
            continue
        unreachable = 0
        if completed:
            log.info("restore guard: the restored job completed a checkpoint; guard off")
            return
        failure = verdict(recent, completed)
        if failure is not None:
            give_up(give_up_message(restore_from, failure, MIN_FAILURES))
            stop.set()
            return


if __name__ == "__main__":
    sys.exit(main())
