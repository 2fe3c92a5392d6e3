"""The JobManager's probes tolerate a slow start (found by tests/test_e2e_kube.py: on a busy 2-core node the JVM took
over a minute to listen on 6123, and a liveness probe without a start-up probe restarted it in a loop)."""

from __future__ import annotations

from typing import Any

from iot_operator.builders import desired_children
from iot_operator.config import OperatorConfig
from iot_operator.spec import parse

CFG = OperatorConfig(image_stream_job="reg/job:1", image_hbase_sync="reg/sync:1", image_ws_bridge="reg/bridge:1",
                     image_simulator="reg/sim:1")  # fmt: skip


def jobmanager_container() -> dict[str, Any]:
    raw = {"metadata": {"name": "p1", "namespace": "ns", "uid": "uid-1", "generation": 1},
           "spec": {"kafka": {"bootstrapServers": "kafka:9092"}, "hbase": {"thrift": {"host": "hb", "port": 9091}}}}
    children = desired_children(parse(raw, CFG), flink_operator=False)
    (jm,) = [c for c in children if c["kind"] == "Deployment" and c["metadata"]["name"] == "p1-flink-jobmanager"]
    (container,) = jm["spec"]["template"]["spec"]["containers"]
    return dict(container)


def test_jobmanager_liveness_waits_for_a_start_up_probe_of_ten_minutes() -> None:
    c = jobmanager_container()
    startup, liveness = c["startupProbe"], c["livenessProbe"]
    assert startup["tcpSocket"] == liveness["tcpSocket"] == {"port": 6123}
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600
    assert liveness["timeoutSeconds"] >= 5 and liveness["failureThreshold"] >= 3
