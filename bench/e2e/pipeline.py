"""The whole pipeline on a local stack of its own: Kafka, HBase + Thrift, then the stream job, N sync workers and the
bridge as pipeline processes (iotpipe_stack), in a temporary home on free loopback ports. ``running_pipeline`` stops
every process it started when it exits (also on Ctrl-C)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from iotcommon.topics import Topics
from iotpipe_stack.pipeline import STREAM_JOB_GC
from iotpipe_stack.pipeline_types import PipelineProcess
from iotpipe_stack.ports import free_ports
from iotpipe_stack.probes import http_ready
from iotpipe_stack.settings import resolve
from iotpipe_stack.stack import LocalStack

PARTITIONS = 2  # readings and every output topic: two sync workers can split them


@dataclass(frozen=True)
class Options:
    workers: int = 1
    checkpoint_ms: int = 2000
    live_raw: str = "uncommitted"
    compare_committed: bool = False  # a second bridge with live_raw=committed, for a same-run comparison
    job_heap: str = "1g"
    jit: str = "full"  # of the stack's Kafka, HBase and Thrift JVMs (IOTPIPE_JIT): steady state, as a deployment runs


@dataclass(frozen=True)
class Running:
    stack: LocalStack
    bootstrap: str
    thrift: tuple[str, int]
    topics: Topics
    sync_ports: tuple[int, ...]
    bridge_port: int
    committed_bridge_port: int  # 0 without --compare-committed

    def pids(self) -> dict[str, int]:
        """Component name -> pid of every process running now."""
        out = {}
        for name in self.stack.process_names():
            pid = self.stack.running_pid(name)
            if pid is not None:
                out[name] = pid
        return out


def _bridge(name: str, port: int, live_raw: str, common: dict[str, str]) -> PipelineProcess:
    return PipelineProcess(
        name=name,
        argv=lambda s: [str(s.python), "-m", "ws_bridge"],
        env=lambda s: {**common, "IOTPIPE_BRIDGE_PORT": str(port), "IOTPIPE_BRIDGE_LIVE_RAW": live_raw,
                       "IOTPIPE_BRIDGE_MAX_CONNECTIONS": "1000"},
        ready=lambda s: http_ready(f"http://127.0.0.1:{port}/healthz"),
    )


def _sync_worker(n: int, port: int, common: dict[str, str]) -> PipelineProcess:
    return PipelineProcess(
        name=f"hbase-sync-{n + 1}",
        argv=lambda s: [str(s.python), "-m", "hbase_sync"],
        env=lambda s: {**common, "IOTPIPE_SYNC_HTTP_HOST": "127.0.0.1", "IOTPIPE_SYNC_HTTP_PORT": str(port)},
        ready=lambda s: http_ready(f"http://127.0.0.1:{port}/readyz"),
    )


def _processes(options: Options, sync_ports: list[int], bridge_port: int,
               committed_port: int) -> list[PipelineProcess]:
    common = {"IOTPIPE_SITE_TZ": "UTC", "IOTPIPE_LOG_LEVEL": "WARNING"}
    procs = [_sync_worker(n, port, common) for n, port in enumerate(sync_ports)]
    procs.append(PipelineProcess(
        name="stream-job",
        argv=lambda s: [str(s.flink_python), "-m", "stream_job"],
        env=lambda s: {**common, "IOTPIPE_LOG_LEVEL": "INFO", "JVM_ARGS": f"-Xmx{options.job_heap} {STREAM_JOB_GC}",
                       "IOTPIPE_FLINK_PARALLELISM": "1", "IOTPIPE_CHECKPOINT_INTERVAL_MS": str(options.checkpoint_ms),
                       "IOTPIPE_RESTORE": "none", "IOTPIPE_STARTING_OFFSETS": "earliest"},
        stop_timeout=40.0,
    ))
    procs.append(_bridge("ws-bridge", bridge_port, options.live_raw, common))
    if committed_port:
        procs.append(_bridge("ws-bridge-committed", committed_port, "committed", common))
    return procs


def create_topics(bootstrap: str, topics: Topics) -> None:
    names = [topics.readings, topics.raw, topics.aggregates, topics.late, topics.deadletter]
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        futures = admin.create_topics([NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names],
                                      request_timeout=60)
        wait(futures.values())  # every request answered before the block destroys the client
        for future in futures.values():
            future.result()


@contextmanager
def running_pipeline(options: Options, progress: Callable[[str], None], keep_home: str = "") -> Iterator[Running]:
    with tempfile.TemporaryDirectory(prefix="bench-e2e-") as tmp:
        home = Path(keep_home or tmp)
        kafka, controller, zk, thrift = free_ports(4)
        environ = {k: v for k, v in os.environ.items() if k in ("IOTPIPE_CACHE", "IOTPIPE_FLINK_VENV")}
        settings = resolve(environ, {"home": str(home), "jit": options.jit}).replace(
            kafka_port=kafka, kafka_controller_port=controller, zk_port=zk, thrift_port=thrift)
        stack = LocalStack(settings, progress=lambda m: progress(f"[stack] {m}"), die_with_parent=True)
        try:
            t0 = time.monotonic()
            stack.up()
            topics = Topics("iotpipe")
            create_topics(settings.bootstrap, topics)
            *sync_ports, bridge_port, committed_port = free_ports(options.workers + 2)
            committed_port = committed_port if options.compare_committed else 0
            stack.start_pipeline(_processes(options, sync_ports, bridge_port, committed_port))
            progress(f"stack and pipeline processes up in {time.monotonic() - t0:.0f} s (home {home})")
            yield Running(stack, settings.bootstrap, (settings.host, settings.thrift_port), topics,
                          tuple(sync_ports), bridge_port, committed_port)
        finally:
            progress("stopping the stack and every pipeline process")
            stack.down()  # each process gets its own stop timeout (the stream job's 40 s, declared above)
            left = [n for n in stack.process_names() if stack.running_pid(n) is not None]
            if left:
                progress(f"still running after down: {left}")

