"""The Flink job's state and errors in the IoTPipeline status (flinkstate, pure)."""

from __future__ import annotations

from typing import Any

from iot_operator import flinkstate
from iot_operator.status import Condition


def test_a_failed_flinkdeployment_shows_its_state_and_error() -> None:
    fd = {"status": {"jobStatus": {"state": "FAILED"}, "jobManagerDeploymentStatus": "ERROR",
                     "lifecycleState": "FAILED",
                     "error": '{"type":"org.apache.flink.kubernetes.operator.exception.ReconciliationException",'
                              '"message":"Job could not be upgraded with last-state while HA disabled"}'}}
    details, cond = flinkstate.from_flinkdeployment("p-flink", fd, suspended=False)
    assert details["jobState"] == "FAILED"
    assert details["jobManagerDeploymentStatus"] == "ERROR" and details["lifecycleState"] == "FAILED"
    assert "HA disabled" in details["error"]
    assert (cond.ok, cond.reason) == (False, "JobFailed") and "HA disabled" in cond.message


def test_a_running_flinkdeployment_is_ready_and_has_no_error() -> None:
    fd = {"status": {"jobStatus": {"state": "RUNNING"}, "jobManagerDeploymentStatus": "READY",
                     "lifecycleState": "STABLE"}}
    details, cond = flinkstate.from_flinkdeployment("p-flink", fd, suspended=False)
    assert "error" not in details
    assert cond == Condition("FlinkJobReady", True, "Running", "FlinkDeployment p-flink: job RUNNING")


def pod(name: str, waiting: str | None = None, last_exit: int | None = None) -> dict[str, Any]:
    cs: dict[str, Any] = {"name": "jobmanager", "state": {"running": {}}}
    if waiting:
        cs["state"] = {"waiting": {"reason": waiting, "message": "back-off 40s restarting failed container"}}
    if last_exit is not None:
        cs["lastState"] = {"terminated": {"exitCode": last_exit, "reason": "Error"}}
    return {"metadata": {"name": name}, "status": {"containerStatuses": [cs]}}


def test_crashing_jobmanager_pods_show_as_the_job_error() -> None:
    details, cond = flinkstate.from_deployments("p-flink-jobmanager", (1, 0), (1, 1),
                                                [pod("jm-1", "CrashLoopBackOff", 2), pod("tm-1")], suspended=False)
    assert details["jobState"] == "FAILING"
    assert details["error"] == ("pod jm-1 container jobmanager: CrashLoopBackOff (back-off 40s restarting failed "
                                "container); last exit 2 Error")
    assert (cond.ok, cond.reason) == (False, "PodsFailing")


def test_healthy_deployments_are_running() -> None:
    details, cond = flinkstate.from_deployments("p-flink-jobmanager", (1, 1), (2, 2), [pod("jm"), pod("tm")],
                                                suspended=False)
    assert details["jobState"] == "DEPLOYED" and "error" not in details
    assert (cond.ok, cond.reason) == (True, "Running")
