"""Status logic: conditions with observedGeneration, phase, and no status write when nothing changed."""

from __future__ import annotations

from iot_operator import status as st
from iot_operator.status import Condition, Outcome


def all_ok() -> Outcome:
    return Outcome(conditions=[Condition(t, True, "Reconciled", "fine") for t in st.COMPONENTS])


def test_all_components_ready_means_ready_and_running() -> None:
    s = st.desired_status(all_ok(), 4, None, "T1")
    assert s["phase"] == "Running"
    assert s["observedGeneration"] == 4
    ready = s["conditions"][0]
    assert ready == {"type": "Ready", "status": "True", "reason": "AllComponentsReady",
                     "message": "every component is reconciled and available", "observedGeneration": 4,
                     "lastTransitionTime": "T1"}
    assert [c["type"] for c in s["conditions"]] == ["Ready", "Degraded", "Conflict", *st.COMPONENTS]
    assert all(c["observedGeneration"] == 4 for c in s["conditions"])


def test_unchanged_status_is_not_written_again() -> None:
    first = st.desired_status(all_ok(), 4, None, "T1")
    second = st.desired_status(all_ok(), 4, first, "T2")
    assert st.status_patch(first, second) == {}


def test_transition_time_moves_only_when_status_flips() -> None:
    first = st.desired_status(all_ok(), 1, None, "T1")
    o = all_ok()
    o.add(Condition(st.SYNC, True, "MinimumReplicasAvailable", "2/2 replicas ready"))
    second = st.desired_status(o, 2, first, "T2")
    sync = next(c for c in second["conditions"] if c["type"] == st.SYNC)
    assert sync["lastTransitionTime"] == "T1" and sync["observedGeneration"] == 2
    o.add(Condition(st.SYNC, False, "ReplicasNotReady", "1/2 replicas ready"))
    third = st.desired_status(o, 2, second, "T3")
    sync = next(c for c in third["conditions"] if c["type"] == st.SYNC)
    assert sync["lastTransitionTime"] == "T3"
    assert st.status_patch(second, third).keys() == {"phase", "conditions"}
    assert [c["type"] for c in st.transitions(second["conditions"], third["conditions"])] == ["Ready", st.SYNC]


def test_invalid_spec_fails_and_keeps_component_conditions() -> None:
    before = st.desired_status(all_ok(), 1, None, "T1")
    s = st.desired_status(Outcome(invalid="flink.timeZone 'X' is not a known IANA time zone"), 2, before, "T2")
    assert s["phase"] == "Failed"
    ready = s["conditions"][0]
    assert (ready["status"], ready["reason"], ready["observedGeneration"]) == ("False", "InvalidSpec", 2)
    assert "timeZone" in ready["message"]
    assert len(s["conditions"]) == 3 + len(st.COMPONENTS)
    # nothing was observed: the details of the last valid pass stay (the scale subresource reads status.simulators)
    before["simulators"] = {"replicas": 2, "labelSelector": "a=b"}
    s = st.desired_status(Outcome(invalid="bad"), 2, before, "T2")
    assert s["simulators"] == {"replicas": 2, "labelSelector": "a=b"}
    assert "simulators" not in st.status_patch(before, s)


def test_unreachable_dependency_degrades() -> None:
    o = all_ok()
    o.add(Condition(st.KAFKA, False, st.DEPENDENCY_UNAVAILABLE, "Kafka at k:1 is unreachable"))
    o.unavailable.append("kafka: Kafka at k:1 is unreachable")
    s = st.desired_status(o, 1, None, "T")
    assert s["phase"] == "Degraded"
    assert (s["conditions"][0]["reason"], s["conditions"][0]["status"]) == ("DependencyUnavailable", "False")


def test_waiting_for_replicas_is_provisioning() -> None:
    o = all_ok()
    o.add(st.replicas_condition(st.BRIDGE, 2, 0))
    s = st.desired_status(o, 1, None, "T")
    assert s["phase"] == "Provisioning"
    assert s["conditions"][0]["reason"] == "ComponentsNotReady"
    assert "BridgeAvailable: ReplicasNotReady (0/2 replicas ready)" in s["conditions"][0]["message"]


def test_not_supported_changes_are_reported() -> None:
    o = all_ok()
    o.add(Condition(st.KAFKA, False, st.NOT_SUPPORTED, "Kafka cannot remove partitions"))
    s = st.desired_status(o, 1, None, "T")
    assert (s["phase"], s["conditions"][0]["reason"]) == ("Degraded", "NotSupported")


def test_suspended() -> None:
    o = all_ok()
    o.suspended = True
    s = st.desired_status(o, 1, None, "T")
    assert s["phase"] == "Suspended" and s["conditions"][0]["reason"] == "Suspended"


def test_replicas_condition() -> None:
    assert st.replicas_condition("X", 3, 3) == Condition("X", True, "MinimumReplicasAvailable", "3/3 replicas ready")
    assert st.replicas_condition("X", 3, 1) == Condition("X", False, "ReplicasNotReady", "1/3 replicas ready")
    assert st.replicas_condition("X", 0, 0, suspended=True).reason == "Suspended"


def test_details_are_part_of_the_status() -> None:
    o = all_ok()
    o.details["simulators"] = {"replicas": 2, "readyReplicas": 0, "sites": 20, "labelSelector": "a=b"}
    s = st.desired_status(o, 1, None, "T")
    assert s["simulators"]["sites"] == 20
    # a merge patch: only what changed, at any depth
    assert st.status_patch(s, {**s, "simulators": {**s["simulators"], "replicas": 3}}) == {
        "simulators": {"replicas": 3}}


def test_a_status_write_removes_keys_that_are_gone() -> None:
    """A merge patch keeps what it does not mention: keys that disappear are written as null, at any depth."""
    before = {"phase": "Degraded", "bridge": {"replicas": 1, "url": "http://ws.example.com/"},
              "flink": {"jobState": "FAILED", "error": "boom"}, "grafana": {"configMap": "x"},
              "kopf": {"progress": {}}}
    after = {"phase": "Running", "bridge": {"replicas": 1}, "flink": {"jobState": "RUNNING"}, "grafana": {}}
    assert st.status_patch(before, after) == {"phase": "Running", "bridge": {"url": None},
                                              "flink": {"jobState": "RUNNING", "error": None},
                                              "grafana": {"configMap": None}}  # kopf's own key is left alone


def test_a_failed_step_is_degraded_with_its_reason() -> None:
    o = all_ok()
    o.add(Condition(st.HBASE, False, st.RECONCILE_ERROR, "IOError: region server starting"))
    o.errors.append("hbase: IOError: region server starting")
    s = st.desired_status(o, 1, None, "T")
    conds = {c["type"]: c for c in s["conditions"]}
    assert s["phase"] == "Degraded"
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "ReconcileError")
    assert (conds["Degraded"]["status"], conds["Degraded"]["reason"]) == ("True", "ReconcileError")
    assert conds["Degraded"]["message"] == "HBaseTablesReady: IOError: region server starting"
    # once the step works again, Degraded turns False (the condition is always written, so it never goes stale)
    fine = st.desired_status(all_ok(), 1, s, "T2")
    conds = {c["type"]: c for c in fine["conditions"]}
    assert (conds["Degraded"]["status"], conds["Degraded"]["reason"]) == ("False", "AsExpected")
    assert conds["Ready"]["status"] == "True"


def test_a_prefix_conflict_is_reported() -> None:
    o = Outcome(conflict="topic prefix t already used by IoTPipeline ns/first")
    s = st.desired_status(o, 1, None, "T")
    conds = {c["type"]: c for c in s["conditions"]}
    assert s["phase"] == "Degraded"
    assert (conds["Conflict"]["status"], conds["Conflict"]["reason"]) == ("True", "PrefixInUse")
    assert (conds["Ready"]["status"], conds["Ready"]["reason"]) == ("False", "Conflict")
    assert "ns/first" in conds["Ready"]["message"]
