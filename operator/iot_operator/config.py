"""The operator's own settings (env var > default; iotcommon.config). kopf's flags stay kopf's (`kopf run --help`)."""

from __future__ import annotations

from dataclasses import dataclass

from iotcommon.config import setting
from iotcommon.logs import log_format_setting, log_level_setting

DESCRIPTION = "iotpipe operator: reconciles IoTPipeline custom resources (`kopf run -m iot_operator.handlers`)."


@dataclass(frozen=True)
class OperatorConfig:
    image_stream_job: str = setting("iotpipe/stream-job:0.1.0", "image of the PyFlink job (unless the CR names one)",
                                    env="IOTPIPE_IMAGE_STREAM_JOB")
    image_hbase_sync: str = setting("iotpipe/hbase-sync:0.1.0", "image of the sync workers (unless the CR names one)",
                                    env="IOTPIPE_IMAGE_HBASE_SYNC")
    image_ws_bridge: str = setting("iotpipe/ws-bridge:0.1.0", "image of the bridge (unless the CR names one)",
                                   env="IOTPIPE_IMAGE_WS_BRIDGE")
    image_simulator: str = setting("iotpipe/simulator:0.1.0", "image of the simulators (unless the CR names one)",
                                   env="IOTPIPE_IMAGE_SIMULATOR")
    resync_seconds: float = setting(60.0, "seconds between drift-correcting reconciles of each IoTPipeline",
                                    env="IOTPIPE_OPERATOR_RESYNC_SECONDS", minimum=0.5, maximum=86400)
    max_backoff_seconds: float = setting(300.0, "longest retry delay when Kafka/HBase is unreachable",
                                         env="IOTPIPE_OPERATOR_MAX_BACKOFF_SECONDS", minimum=1)
    dependency_timeout_seconds: float = setting(10.0, "timeout of one Kafka admin / HBase Thrift operation",
                                                env="IOTPIPE_OPERATOR_DEPENDENCY_TIMEOUT_SECONDS", minimum=0.5)
    metrics_enabled: bool = setting(True, "serve Prometheus metrics", env="IOTPIPE_METRICS_ENABLED")
    metrics_port: int = setting(8000, "port of the Prometheus /metrics endpoint (0 = any free port)",
                                env="IOTPIPE_METRICS_PORT", minimum=0, maximum=65535)
    metrics_host: str = setting("0.0.0.0", "address of the /metrics endpoint", env="IOTPIPE_METRICS_HOST")
    log_level: str = log_level_setting("log level (the operator's and its pods')")
    # the pods' log format; the operator's own lines are kopf's: `kopf run --log-format=json`
    log_format: str = log_format_setting()
