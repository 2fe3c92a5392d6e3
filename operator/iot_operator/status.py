"""Conditions, phase and the status patch of an IoTPipeline. Pure.

Conventions (as Strimzi and the Flink operator do): one condition per component plus ``Ready``; each carries
``observedGeneration`` and a CamelCase ``reason``; ``lastTransitionTime`` only moves when ``status`` flips; the status
is written only when something in it changed (``status_patch`` returns {} otherwise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# Component condition types, in the order they are reported.
KAFKA = "KafkaTopicsReady"
HBASE = "HBaseTablesReady"
FLINK = "FlinkJobReady"
SYNC = "SyncWorkersAvailable"
BRIDGE = "BridgeAvailable"
SIMULATORS = "SimulatorsAvailable"
GRAFANA = "GrafanaDashboardReady"
READY = "Ready"
COMPONENTS = (KAFKA, HBASE, FLINK, SYNC, BRIDGE, SIMULATORS, GRAFANA)

# Reasons
RECONCILED = "Reconciled"
DEPENDENCY_UNAVAILABLE = "DependencyUnavailable"
NOT_SUPPORTED = "NotSupported"
INVALID_SPEC = "InvalidSpec"
SUSPENDED = "Suspended"
_DEGRADING = {DEPENDENCY_UNAVAILABLE, NOT_SUPPORTED, "NamespaceNotFound", "ApplyFailed"}


@dataclass(frozen=True)
class Condition:
    type: str
    ok: bool | None  # None = Unknown
    reason: str
    message: str = ""

    @property
    def status(self) -> str:
        return "Unknown" if self.ok is None else str(self.ok)


@dataclass
class Outcome:
    """What one reconcile pass found and did: component conditions and per-component status details."""

    conditions: list[Condition] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    invalid: str | None = None  # an InvalidSpec message
    suspended: bool = False
    unavailable: list[str] = field(default_factory=list)  # "kafka: ...", "hbase: ..."

    def add(self, condition: Condition) -> None:
        self.conditions = [c for c in self.conditions if c.type != condition.type] + [condition]


def replicas_condition(ctype: str, desired: int, ready: int, suspended: bool = False) -> Condition:
    """A workload's availability from its desired and ready replica counts."""
    if desired == 0:
        return Condition(ctype, True, SUSPENDED if suspended else "ScaledToZero", "0 replicas desired")
    msg = f"{ready}/{desired} replicas ready"
    if ready >= desired:
        return Condition(ctype, True, "MinimumReplicasAvailable", msg)
    return Condition(ctype, False, "ReplicasNotReady", msg)


def ready_condition(outcome: Outcome) -> Condition:
    if outcome.invalid is not None:
        return Condition(READY, False, INVALID_SPEC, outcome.invalid)
    if outcome.suspended:
        return Condition(READY, False, SUSPENDED, "spec.suspend is true: workloads are scaled to zero")
    if outcome.unavailable:
        return Condition(READY, False, DEPENDENCY_UNAVAILABLE, "; ".join(outcome.unavailable))
    failing = [c for c in outcome.conditions if c.ok is not True]
    if not failing:
        return Condition(READY, True, "AllComponentsReady", "every component is reconciled and available")
    reason = NOT_SUPPORTED if any(c.reason == NOT_SUPPORTED for c in failing) else "ComponentsNotReady"
    return Condition(READY, False, reason, "; ".join(f"{c.type}: {c.reason} ({c.message})" for c in failing))


def phase(outcome: Outcome) -> str:
    if outcome.invalid is not None:
        return "Failed"
    if outcome.suspended:
        return "Suspended"
    if outcome.unavailable or any(c.reason in _DEGRADING for c in outcome.conditions if c.ok is not True):
        return "Degraded"
    if all(c.ok is True for c in outcome.conditions) and outcome.conditions:
        return "Running"
    return "Provisioning"


def merge_conditions(old: Sequence[Mapping[str, Any]] | None, new: Sequence[Condition], generation: int,
                     now: str) -> list[dict[str, Any]]:
    """New conditions over the old ones: lastTransitionTime kept unless status flips; old types not in ``new`` stay."""
    by_type = {str(c.get("type")): dict(c) for c in old or []}
    for c in new:
        prev = by_type.get(c.type)
        since = prev.get("lastTransitionTime") if prev and prev.get("status") == c.status else None
        by_type[c.type] = {"type": c.type, "status": c.status, "reason": c.reason, "message": c.message,
                           "observedGeneration": generation, "lastTransitionTime": since or now}
    order = {t: i for i, t in enumerate((READY, *COMPONENTS))}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], len(order)), c["type"]))


def desired_status(outcome: Outcome, generation: int, old: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The full status this pass wants (without kopf's own subtree)."""
    old = old or {}
    conditions = [ready_condition(outcome), *outcome.conditions]
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase(outcome),
        "conditions": merge_conditions(old.get("conditions"), conditions, generation, now),
    }
    status.update(outcome.details)
    return status


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """Only the top-level status keys whose value differs; {} means: do not write."""
    current = current or {}
    return {k: v for k, v in desired.items() if current.get(k) != v}


def transitions(old: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed (or that are new): what deserves an event."""
    before = {str(c.get("type")): (c.get("status"), c.get("reason")) for c in old or []}
    return [dict(c) for c in new if before.get(str(c["type"])) != (c["status"], c["reason"])]
