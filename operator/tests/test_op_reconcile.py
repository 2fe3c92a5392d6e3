"""reconcile() with in-memory FAKES of Kafka, HBase and the Kubernetes API (unit test: no services).

The real-service version of these behaviours is tests/operator/test_operator_kube.py.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from iot_operator import status as st
from iot_operator.config import OperatorConfig
from iot_operator.reconcile import Deps, cleanup, reconcile
from iot_operator.spec import PipelineSpec, TableSpec
from iot_operator.tables import TableState
from iot_operator.topics import TopicPlan, TopicState
from iotcommon.errors import ServiceUnavailable

CFG = OperatorConfig()


class FakeKafka:
    def __init__(self) -> None:
        self.topics: dict[str, TopicState] = {}
        self.down = False

    def observe(self, names: Sequence[str]) -> dict[str, TopicState]:
        if self.down:
            raise ServiceUnavailable("Kafka at k:9092 is unreachable: fake")
        return {n: self.topics[n] for n in names if n in self.topics}

    def apply(self, p: TopicPlan) -> tuple[list[str], dict[str, str]]:
        done = []
        for t in p.create:
            self.topics[t.name] = TopicState(t.name, t.partitions, t.replication_factor, t.config_dict)
            done.append(f"created topic {t.name}")
        for t, _ in p.grow:
            old = self.topics[t.name]
            self.topics[t.name] = TopicState(t.name, t.partitions, old.replication_factor, old.config)
            done.append(f"grew partitions of topic {t.name}")
        return done, {}

    def delete(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.topics.pop(n, None)]


class FakeHBase:
    def __init__(self) -> None:
        self.tables: dict[str, TableState] = {}

    def observe(self, desired: Sequence[TableSpec]) -> dict[str, TableState]:
        return {t.name: self.tables[t.name] for t in desired if t.name in self.tables}

    def create(self, tables: Sequence[TableSpec]) -> tuple[list[str], dict[str, str]]:
        for t in tables:
            self.tables[t.name] = TableState(t.name, t.ttl_seconds, t.max_versions)
        return [f"created table {t.name}" for t in tables], {}

    def existing(self) -> list[str]:
        return list(self.tables)

    def delete(self, names: Sequence[str]) -> list[str]:
        return [n for n in names if self.tables.pop(n, None)]

    def close(self) -> None:
        pass


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str, str], dict[str, Any]] = {}
        self.applies = 0

    def serves(self, api_version: str, plural: str) -> bool:
        return False

    def apply(self, obj: dict[str, Any]) -> tuple[dict[str, Any], bool]:
        self.applies += 1
        k = (obj["apiVersion"], obj["kind"], obj["metadata"]["name"])
        created = k not in self.objects
        self.objects[k] = copy.deepcopy(obj)
        return self.objects[k], created

    def list(self, api_version: str, kind: str, namespace: str, label_selector: str) -> list[dict[str, Any]]:
        return [o for k, o in self.objects.items() if k[:2] == (api_version, kind)]

    def delete(self, obj: dict[str, Any]) -> bool:
        return self.objects.pop((obj["apiVersion"], obj["kind"], obj["metadata"]["name"]), None) is not None


def world() -> tuple[Deps, FakeKafka, FakeHBase, FakeKube]:
    kafka, hbase, kube = FakeKafka(), FakeHBase(), FakeKube()

    def make_kafka(p: PipelineSpec) -> Any:
        return kafka

    def make_hbase(p: PipelineSpec) -> Any:
        return hbase

    return Deps(kube=kube, kafka=make_kafka, hbase=make_hbase), kafka, hbase, kube  # type: ignore[arg-type]


def body(**spec: Any) -> dict[str, Any]:
    s: dict[str, Any] = {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}}}
    s.update(spec)
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u1", "generation": 1}, "spec": s}


class Events:
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def __call__(self, reason: str, message: str, warning: bool = False) -> None:
        self.seen.append((reason, message))


def test_first_pass_creates_everything_and_second_pass_changes_nothing() -> None:
    deps, kafka, hbase, kube = world()
    ev = Events()
    out = reconcile(body(), CFG, deps, ev)
    assert sorted(kafka.topics) == ["ns.p.aggregates", "ns.p.deadletter", "ns.p.late", "ns.p.raw", "ns.p.readings"]
    assert sorted(hbase.tables) == ["ns_p_aggregates", "ns_p_deadletters", "ns_p_late", "ns_p_raw"]
    assert len(kube.objects) == 8
    conds = {c.type: c for c in out.conditions}
    assert conds[st.KAFKA].ok and conds[st.HBASE].ok and conds[st.GRAFANA].ok
    assert conds[st.SYNC] == st.Condition(st.SYNC, False, "ReplicasNotReady", "0/1 replicas ready")
    assert [r for r, _ in ev.seen].count("TopicCreated") == 5
    assert [r for r, _ in ev.seen].count("HBaseTableCreated") == 4
    assert [r for r, _ in ev.seen].count("ChildCreated") == 8

    ev2 = Events()
    b = body()
    b["status"] = st.desired_status(out, 1, None, "T")
    out2 = reconcile(b, CFG, deps, ev2)
    assert ev2.seen == []
    assert st.status_patch(b["status"], st.desired_status(out2, 1, b["status"], "T2")) == {}


def test_a_deleted_child_is_recreated() -> None:
    deps, _, _, kube = world()
    b = body()
    b["status"] = st.desired_status(reconcile(b, CFG, deps, Events()), 1, None, "T")
    del kube.objects[("apps/v1", "Deployment", "p-sync")]
    ev = Events()
    reconcile(b, CFG, deps, ev)
    assert ("apps/v1", "Deployment", "p-sync") in kube.objects
    assert ev.seen == [("ChildRecreated", "recreated Deployment p-sync")]


def test_children_no_longer_wanted_are_deleted() -> None:
    deps, _, _, kube = world()
    reconcile(body(), CFG, deps, Events())
    ev = Events()
    reconcile(body(grafana={"enabled": False}), CFG, deps, ev)
    assert ("v1", "ConfigMap", "p-grafana-dashboard") not in kube.objects
    assert ev.seen == [("ChildDeleted", "deleted ConfigMap p-grafana-dashboard (no longer in the spec)")]


def test_scaling_the_simulators_is_an_event() -> None:
    deps, _, _, kube = world()
    reconcile(body(), CFG, deps, Events())
    ev = Events()
    out = reconcile(body(simulators={"replicas": 3, "sitesPerReplica": 4}), CFG, deps, ev)
    assert kube.objects[("apps/v1", "StatefulSet", "p-simulator")]["spec"]["replicas"] == 3
    assert ev.seen == [("ScaledSimulators", "simulators scaled from 1 to 3 replicas (12 sites)")]
    assert out.details["simulators"]["replicas"] == 3 and out.details["simulators"]["sites"] == 12


def test_unreachable_kafka_still_reconciles_the_rest() -> None:
    deps, kafka, hbase, kube = world()
    kafka.down = True
    out = reconcile(body(), CFG, deps, Events())
    assert out.unavailable == ["kafka: Kafka at k:9092 is unreachable: fake"]
    conds = {c.type: c for c in out.conditions}
    assert (conds[st.KAFKA].ok, conds[st.KAFKA].reason) == (False, "DependencyUnavailable")
    assert conds[st.HBASE].ok and len(hbase.tables) == 4 and len(kube.objects) == 8
    assert st.ready_condition(out).reason == "DependencyUnavailable"


def test_invalid_spec_touches_nothing() -> None:
    deps, kafka, hbase, kube = world()
    out = reconcile(body(flink={"timeZone": "Nowhere/Land"}), CFG, deps, Events())
    assert out.invalid is not None and "timeZone" in out.invalid
    assert not kafka.topics and not hbase.tables and not kube.objects


def test_partitions_grow() -> None:
    deps, kafka, _, _ = world()
    reconcile(body(), CFG, deps, Events())
    ev = Events()
    reconcile(body(kafka={"bootstrapServers": "k:9092", "topics": [{"name": "readings", "partitions": 6}]}), CFG,
              deps, ev)
    assert kafka.topics["ns.p.readings"].partitions == 6
    assert ev.seen == [("PartitionsIncreased", "grew partitions of topic ns.p.readings")]


def test_cleanup_follows_the_deletion_policies() -> None:
    deps, kafka, hbase, _ = world()
    reconcile(body(), CFG, deps, Events())
    assert cleanup(body(), CFG, deps, Events()) == []
    assert len(kafka.topics) == 5 and len(hbase.tables) == 4
    done = cleanup(body(kafka={"bootstrapServers": "k:9092", "topicDeletionPolicy": "Delete"},
                        hbase={"thrift": {"host": "hb"}, "tableDeletionPolicy": "Delete"}), CFG, deps, Events())
    assert len(done) == 9 and not kafka.topics and not hbase.tables
