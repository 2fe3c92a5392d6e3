"""Pure plans: what to do to Kafka topics and HBase tables, given the spec and what exists."""

from __future__ import annotations

from iot_operator.spec import TableSpec, TopicSpec
from iot_operator.tables import TableState, table_status
from iot_operator.tables import plan as table_plan
from iot_operator.topics import TopicState, topic_status
from iot_operator.topics import plan as topic_plan


def topic(name: str, partitions: int = 3, rf: int = 1, **config: str) -> TopicSpec:
    cfg = {"retention.ms": "1000", **config}
    return TopicSpec(name.split(".")[-1], name, partitions, rf, tuple(sorted(cfg.items())))


def test_missing_topics_are_created() -> None:
    p = topic_plan([topic("p.raw"), topic("p.late")], {"p.late": TopicState("p.late", 3, 1, {"retention.ms": "1000"})})
    assert [t.name for t in p.create] == ["p.raw"]
    assert not p.grow and not p.alter and not p.unsupported


def test_up_to_date_topics_need_nothing() -> None:
    state = {"p.raw": TopicState("p.raw", 3, 1, {"retention.ms": "1000", "segment.bytes": "9"})}
    assert topic_plan([topic("p.raw")], state).empty


def test_more_partitions_grow_the_topic() -> None:
    p = topic_plan([topic("p.raw", partitions=8)], {"p.raw": TopicState("p.raw", 3, 1, {"retention.ms": "1000"})})
    assert [(t.name, t.partitions, current) for t, current in p.grow] == [("p.raw", 8, 3)]


def test_config_drift_is_set_back_only_for_keys_the_spec_sets() -> None:
    state = {"p.raw": TopicState("p.raw", 3, 1, {"retention.ms": "5", "cleanup.policy": "compact"})}
    p = topic_plan([topic("p.raw")], state)
    assert [(t.name, changes) for t, changes in p.alter] == [("p.raw", {"retention.ms": "1000"})]


def test_what_kafka_cannot_do_is_reported_not_done() -> None:
    state = {"p.raw": TopicState("p.raw", 6, 1, {"retention.ms": "1000"})}
    p = topic_plan([topic("p.raw", partitions=3, rf=3)], state)
    assert p.empty
    messages = [m for _, m in p.unsupported]
    assert "has 6 partitions, the spec asks for 3: Kafka cannot remove partitions" in messages[0]
    assert "replication factor 1, the spec asks for 3" in messages[1]


def test_topic_status_rows() -> None:
    rows = topic_status([topic("p.raw"), topic("p.late")], {"p.raw": TopicState("p.raw", 3, 1, {})},
                        {"p.raw": "boom"})
    assert rows == [
        {"name": "raw", "topicName": "p.raw", "ready": False, "partitions": 3, "replicationFactor": 1,
         "message": "boom"},
        {"name": "late", "topicName": "p.late", "ready": False},
    ]


def table(name: str, ttl: int = 0, versions: int = 1) -> TableSpec:
    return TableSpec(name.split("_")[-1], name, ttl, versions, "NONE")


def test_missing_tables_are_created_and_drift_reported() -> None:
    p = table_plan([table("p_raw", ttl=60), table("p_late"), table("p_aggregates")],
                   {"p_raw": TableState("p_raw", 0, 1), "p_late": TableState("p_late", 0, 1)})
    assert [t.name for t in p.create] == ["p_aggregates"]
    assert len(p.drift) == 1
    assert "table p_raw has TTL forever s (spec: 60)" in p.drift[0][1]
    assert "Thrift1 cannot alter column families" in p.drift[0][1]


def test_table_status_rows() -> None:
    assert table_status([table("p_raw"), table("p_late")], ["p_raw"], {}) == [
        {"name": "raw", "tableName": "p_raw", "ready": True},
        {"name": "late", "tableName": "p_late", "ready": False},
    ]
