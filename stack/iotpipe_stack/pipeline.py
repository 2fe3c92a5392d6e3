"""The pipeline's own processes, started by `iotpipe run` (in this order) once Kafka, HBase/Thrift and Flink are ready.

Each component adds ONE entry to PROCESSES (small, targeted edit; keep the others untouched). Example:

    PipelineProcess(
        name="hbase-sync",
        argv=lambda s: [str(s.python), "-m", "hbase_sync"],
        env=lambda s: {"IOTPIPE_SYNC_GROUP": "hbase-sync"},
        ready=None,
    ),

`s` is a StackInfo: s.bootstrap, s.thrift_host, s.thrift_port, s.python (main venv), s.flink_python (.venv-flink),
s.connector_jar, s.java_home, s.home, s.logs_dir. Every process also gets StackInfo.base_env() in its environment.
"""

from __future__ import annotations

from iotpipe_stack.pipeline_types import PipelineProcess, StackInfo
from iotpipe_stack.probes import http_ready
from ws_bridge import probe as bridge_probe

__all__ = ["PROCESSES", "STREAM_JOB_GC", "PipelineProcess", "StackInfo"]

#: the stream job's GC: the JVM's default G1 cost ~20 % more job CPU per reading (docs/stream-job-performance.md,
#: "Garbage collector"); bench-e2e starts the job with it too
STREAM_JOB_GC = "-XX:+UseParallelGC"

PROCESSES: list[PipelineProcess] = [
    PipelineProcess(  # Kafka -> HBase sync worker (services/hbase_sync); ready once HBase answers and tables exist
        name="hbase-sync",
        argv=lambda s: [str(s.python), "-m", "hbase_sync"],
        env=lambda s: {"IOTPIPE_SYNC_HTTP_HOST": "127.0.0.1", "IOTPIPE_SYNC_HTTP_PORT": "9464"},
        ready=lambda s: http_ready("http://127.0.0.1:9464/readyz"),
    ),
    PipelineProcess(  # Flink stream job (services/stream_job, .venv-flink): readings -> raw/aggregates/late/deadletter
        name="stream-job",
        argv=lambda s: [str(s.flink_python), "-m", "stream_job"],
        # resumes from its latest checkpoint. Checkpoints every second, not the job's default 2 s: the local pipeline is
        # a live demo at ~40 readings/s, where a stored reading's delay is what counts (docs/performance.md)
        env=lambda s: {"JVM_ARGS": f"-Xmx1g {STREAM_JOB_GC}", "IOTPIPE_FLINK_PARALLELISM": "1",
                       "IOTPIPE_CHECKPOINT_INTERVAL_MS": "1000"},
        ready=None,
        stop_timeout=40.0,
    ),
    PipelineProcess(  # device simulators (simulators/): 5 sites, one 15-min step per second = 1 simulated day / 96 s
        name="simulator",
        argv=lambda s: [str(s.python), "-m", "iot_simulators"],
        env=lambda s: {"IOTPIPE_SIM_SITES": "5", "IOTPIPE_SIM_SPEED": "900", "IOTPIPE_SIM_PROGRESS_S": "30"},
        ready=None,
    ),
    PipelineProcess(  # websocket/HTTP bridge + built-in dashboard (services/ws_bridge); ready when /healthz answers
        name="ws-bridge",
        argv=lambda s: [str(s.python), "-m", "ws_bridge"],
        env=lambda s: {"IOTPIPE_BRIDGE_PORT": str(bridge_probe.local_port())},
        ready=lambda s: http_ready(bridge_probe.dashboard_url() + "healthz"),
        url=lambda s: bridge_probe.dashboard_url(),  # printed by `iotpipe run`: the live dashboard
    ),
    # simulator, stream job, sync worker, bridge: one entry each
]
