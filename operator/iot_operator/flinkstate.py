"""The Flink job's state and errors for the IoTPipeline status. Pure.

FlinkDeployment mode: what the Flink Kubernetes Operator writes into the FlinkDeployment's status (``jobStatus.state``,
``jobManagerDeploymentStatus``, ``lifecycleState``, ``error``). Deployments mode: the JobManager/TaskManager
Deployments' ready replicas and their pods' container states (CrashLoopBackOff, ImagePullBackOff, last exit code).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from iot_operator.status import FLINK, SUSPENDED, Condition

MAX_ERROR = 1000  # characters of an error kept in the status
FAILED_STATES = {"FAILED", "FAILING"}
#: container waiting reasons that mean the pod will not start on its own
BAD_WAITING = {"CrashLoopBackOff", "ImagePullBackOff", "ErrImagePull", "CreateContainerConfigError",
               "CreateContainerError", "InvalidImageName", "RunContainerError"}


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR else text[:MAX_ERROR - 3] + "..."


def from_flinkdeployment(name: str, fd: Mapping[str, Any], suspended: bool) -> tuple[dict[str, Any], Condition]:
    """(status.flink, FlinkJobReady) from a FlinkDeployment as the Flink operator reports it."""
    status = fd.get("status") or {}
    state = str((status.get("jobStatus") or {}).get("state") or "")
    details: dict[str, Any] = {"mode": "FlinkDeployment", "deploymentName": name, "jobState": state or "UNKNOWN",
                               "suspended": suspended}
    for key in ("jobManagerDeploymentStatus", "lifecycleState"):
        if status.get(key):
            details[key] = str(status[key])
    error = str(status.get("error") or "")
    if error:
        details["error"] = _short(error)
    if suspended:
        return details, Condition(FLINK, True, SUSPENDED, "job.state is suspended")
    if error or state in FAILED_STATES or status.get("lifecycleState") == "FAILED":
        why = error or f"job state {state or status.get('lifecycleState')}"
        return details, Condition(FLINK, False, "JobFailed", _short(f"FlinkDeployment {name}: {why}"))
    if state == "RUNNING":
        return details, Condition(FLINK, True, "Running", f"FlinkDeployment {name}: job RUNNING")
    return details, Condition(FLINK, False, "JobNotRunning",
                              f"FlinkDeployment {name}: job state {state or 'not reported yet'}")


def pod_problems(pods: Sequence[Mapping[str, Any]]) -> list[str]:
    """One line per container that cannot run: waiting for a bad reason, or restarting after failed exits."""
    out = []
    for pod in pods:
        pod_name = (pod.get("metadata") or {}).get("name", "?")
        for cs in (pod.get("status") or {}).get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            last = (cs.get("lastState") or {}).get("terminated") or {}
            if waiting.get("reason") in BAD_WAITING:
                line = f"pod {pod_name} container {cs.get('name')}: {waiting['reason']}"
                if waiting.get("message"):
                    line += f" ({waiting['message']})"
                if last:
                    line += f"; last exit {last.get('exitCode')} {last.get('reason') or ''}".rstrip()
                    if last.get("message"):
                        line += f": {last['message']}"
                out.append(_short(line))
    return out


def from_deployments(name: str, jm: tuple[int, int], tm: tuple[int, int], pods: Sequence[Mapping[str, Any]],
                     suspended: bool) -> tuple[dict[str, Any], Condition]:
    """(status.flink, FlinkJobReady) from the JobManager/TaskManager (desired, ready) replicas and their pods."""
    (jm_n, jm_ready), (tm_n, tm_ready) = jm, tm
    problems = [] if suspended else pod_problems(pods)
    state = ("SUSPENDED" if suspended else "FAILING" if problems else "DEPLOYED" if jm_ready >= 1 else "PENDING")
    details: dict[str, Any] = {"mode": "Deployments", "deploymentName": name, "jobState": state,
                               "suspended": suspended}
    if problems:
        details["error"] = _short("; ".join(problems))
    if suspended:
        return details, Condition(FLINK, True, SUSPENDED, "JobManager and TaskManagers scaled to 0")
    if problems:
        return details, Condition(FLINK, False, "PodsFailing", details["error"])
    if jm_ready >= jm_n and tm_ready >= tm_n:
        return details, Condition(FLINK, True, "Running", f"JobManager ready, {tm_ready}/{tm_n} TaskManagers ready")
    return details, Condition(FLINK, False, "ReplicasNotReady",
                              f"JobManager {jm_ready}/{jm_n} ready, TaskManagers {tm_ready}/{tm_n} ready")
