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
DEGRADED = "Degraded"  # True, with the failing step's reason, whenever a step failed; False (AsExpected) otherwise
CONFLICT = "Conflict"  # True when another pipeline already claims this one's topic or table prefix
COMPONENTS = (KAFKA, HBASE, FLINK, SYNC, BRIDGE, SIMULATORS, GRAFANA)

# Reasons
RECONCILED = "Reconciled"
DEPENDENCY_UNAVAILABLE = "DependencyUnavailable"
NOT_SUPPORTED = "NotSupported"
INVALID_SPEC = "InvalidSpec"
SUSPENDED = "Suspended"
RECONCILE_ERROR = "ReconcileError"  # a step failed with an unexpected error (Thrift IOError, Kafka timeout, API 5xx)
PREFIX_CONFLICT = "PrefixInUse"
#: status keys written by others (kopf's progress bookkeeping): never removed by a status write
FOREIGN_KEYS = frozenset({"kopf"})
_DEGRADING = {DEPENDENCY_UNAVAILABLE, NOT_SUPPORTED, "NamespaceNotFound", "ApplyFailed", RECONCILE_ERROR,
              "JobFailed", "PodsFailing"}


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
    errors: list[str] = field(default_factory=list)  # "kafka: TimeoutError: ...": steps that failed unexpectedly
    conflict: str | None = None  # another pipeline owns a prefix of this one: nothing was touched

    @property
    def retry(self) -> list[str]:
        """What makes the caller retry with backoff: unreachable dependencies and failed steps."""
        return [*self.unavailable, *self.errors]

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
    if outcome.conflict is not None:
        return Condition(READY, False, CONFLICT, outcome.conflict)
    if outcome.suspended:
        return Condition(READY, False, SUSPENDED, "spec.suspend is true: workloads are scaled to zero")
    if outcome.unavailable:
        return Condition(READY, False, DEPENDENCY_UNAVAILABLE, "; ".join(outcome.unavailable))
    if outcome.errors:
        return Condition(READY, False, RECONCILE_ERROR, "; ".join(outcome.errors))
    failing = [c for c in outcome.conditions if c.ok is not True]
    if not failing:
        return Condition(READY, True, "AllComponentsReady", "every component is reconciled and available")
    reason = NOT_SUPPORTED if any(c.reason == NOT_SUPPORTED for c in failing) else "ComponentsNotReady"
    return Condition(READY, False, reason, "; ".join(f"{c.type}: {c.reason} ({c.message})" for c in failing))


def _degrading(outcome: Outcome) -> list[Condition]:
    return [c for c in outcome.conditions if c.ok is not True and c.reason in _DEGRADING]


def degraded_condition(outcome: Outcome) -> Condition:
    """Degraded=True names the failed step(s): the first one's reason, every one's message."""
    if outcome.conflict is not None:
        return Condition(DEGRADED, True, PREFIX_CONFLICT, outcome.conflict)
    failing = _degrading(outcome)
    if not failing:
        return Condition(DEGRADED, False, "AsExpected", "no step failed")
    return Condition(DEGRADED, True, failing[0].reason, "; ".join(f"{c.type}: {c.message}" for c in failing))


def conflict_condition(outcome: Outcome) -> Condition:
    if outcome.conflict is not None:
        return Condition(CONFLICT, True, PREFIX_CONFLICT, outcome.conflict)
    return Condition(CONFLICT, False, "PrefixesOwned", "no other pipeline uses this pipeline's topic or table prefix")


def phase(outcome: Outcome) -> str:
    if outcome.invalid is not None:
        return "Failed"
    if outcome.conflict is not None:
        return "Degraded"
    if outcome.suspended:
        return "Suspended"
    if outcome.unavailable or outcome.errors or _degrading(outcome):
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
    order = {t: i for i, t in enumerate((READY, DEGRADED, CONFLICT, *COMPONENTS))}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], len(order)), c["type"]))


def desired_status(outcome: Outcome, generation: int, old: Mapping[str, Any] | None, now: str) -> dict[str, Any]:
    """The full status this pass wants (without kopf's own subtree)."""
    old = old or {}
    conditions = [ready_condition(outcome), *outcome.conditions]
    if outcome.invalid is None:  # an invalid spec was not reconciled: the other conditions stay as they were
        conditions[1:1] = [degraded_condition(outcome), conflict_condition(outcome)]
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "phase": phase(outcome),
        "conditions": merge_conditions(old.get("conditions"), conditions, generation, now),
    }
    status.update(outcome.details)
    if outcome.invalid is not None:  # nothing was observed: what the last valid pass found stays (scale subresource)
        status.update({k: v for k, v in old.items() if k not in status and k not in FOREIGN_KEYS})
    return status


def status_patch(current: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386) from ``current`` to ``desired``; {} means: do not write.

    A merge patch keeps every key it does not mention, so a key that should disappear is written as null, at any depth
    (``bridge.url`` when the ingress goes, ``flink.error`` once the job recovered). Lists are replaced whole.
    """
    return _merge_patch({k: v for k, v in (current or {}).items() if k not in FOREIGN_KEYS}, desired)


def _merge_patch(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {k: None for k in current if k not in desired}
    for k, v in desired.items():
        old = current.get(k)
        if isinstance(v, Mapping) and isinstance(old, Mapping):
            sub = _merge_patch(old, v)
            if sub:
                patch[k] = sub
        elif old != v or k not in current:
            patch[k] = v
    return patch


def transitions(old: Sequence[Mapping[str, Any]] | None, new: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Conditions whose status or reason changed (or that are new): what deserves an event."""
    before = {str(c.get("type")): (c.get("status"), c.get("reason")) for c in old or []}
    return [dict(c) for c in new if before.get(str(c["type"])) != (c["status"], c["reason"])]
