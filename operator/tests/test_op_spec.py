"""spec.parse: defaults, derived names, and the checks the CRD schema cannot make (InvalidSpec)."""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import pytest
import yaml

from iot_operator.config import OperatorConfig
from iot_operator.spec import InvalidSpec, parse

REPO = Path(__file__).resolve().parents[2]
CFG = OperatorConfig()


def body(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}}}
    base.update(spec)
    return {"metadata": {"name": "plant-1", "namespace": "iot", "uid": "u-1", "generation": 3}, "spec": base}


def test_minimal_spec_gets_documented_defaults() -> None:
    p = parse(body(), CFG)
    assert p.kafka.bootstrap == "k:9092"
    assert p.kafka.topic_prefix == "iot.plant-1"
    assert [t.name for t in p.kafka.topics] == ["iot.plant-1.readings", "iot.plant-1.raw", "iot.plant-1.aggregates",
                                          "iot.plant-1.late", "iot.plant-1.deadletter"]
    assert {t.partitions for t in p.kafka.topics} == {3}
    assert {t.replication_factor for t in p.kafka.topics} == {1}
    assert all(t.config_dict == {"retention.ms": "604800000"} for t in p.kafka.topics)
    assert p.hbase.table_prefix == "iot_plant_1"
    assert [t.name for t in p.hbase.tables] == ["iot_plant_1_raw", "iot_plant_1_aggregates", "iot_plant_1_late",
                                          "iot_plant_1_deadletters"]
    assert p.hbase.thrift.port == 9090
    assert p.simulators.replicas == 1 and p.simulators.sites_per_replica == 10
    assert p.flink.time_zone == "Europe/Athens"
    assert p.sync.consumer_group == "iot.plant-1.hbase-sync"
    assert p.flink.image == "iotpipe/stream-job:0.1.0" and p.simulators.image == "iotpipe/simulator:0.1.0"
    assert p.generation == 3 and not p.suspend


def test_overrides_per_topic_and_table() -> None:
    p = parse(body(kafka={"bootstrapServers": "k:9092", "topicPrefix": "acme", "partitions": 4, "retentionMs": 1000,
                          "topics": [{"name": "readings", "partitions": 12, "config": {"cleanup.policy": "delete"}},
                                     {"name": "late", "retentionMs": -1}]},
                   hbase={"thrift": {"host": "hb"}, "namespace": "iot", "tablePrefix": "acme", "ttlSeconds": 60,
                          "tables": [{"name": "raw", "ttlSeconds": 5, "maxVersions": 2}]}), CFG)
    topics = {t.key: t for t in p.kafka.topics}
    assert topics["readings"].name == "acme.readings"
    assert topics["readings"].partitions == 12
    assert topics["readings"].config_dict == {"cleanup.policy": "delete", "retention.ms": "1000"}
    assert topics["late"].config_dict == {"retention.ms": "-1"}
    assert topics["raw"].partitions == 4
    tables = {t.key: t for t in p.hbase.tables}
    assert tables["raw"].name == "iot:acme_raw" and tables["raw"].ttl_seconds == 5 and tables["raw"].max_versions == 2
    assert tables["late"].ttl_seconds == 60
    assert p.hbase.table_prefix == "iot:acme"  # what the services get: iotcommon.hbase_layout.table_name adds _<table>


def test_strimzi_cluster_reference_gives_its_bootstrap_service() -> None:
    p = parse(body(kafka={"strimziClusterRef": {"name": "my-cluster", "namespace": "kafka"}}), CFG)
    assert p.kafka.bootstrap == "my-cluster-kafka-bootstrap.kafka.svc:9092"
    p = parse(body(kafka={"strimziClusterRef": {"name": "c"}}), CFG)
    assert p.kafka.bootstrap == "c-kafka-bootstrap.iot.svc:9092"


def test_spec_images_win_over_operator_images() -> None:
    cfg = OperatorConfig(image_simulator="reg/sim:9")
    p = parse(body(simulators={"image": "mine/sim:1"}), cfg)
    assert p.simulators.image == "mine/sim:1"
    assert parse(body(), cfg).simulators.image == "reg/sim:9"


def test_deletion_policies_are_retain_unless_the_spec_says_delete() -> None:
    assert (parse(body(), CFG).kafka.deletion_policy, parse(body(), CFG).hbase.deletion_policy) == ("Retain", "Retain")
    assert parse(body(kafka={"bootstrapServers": "k", "topicDeletionPolicy": "Delete"}), CFG).kafka.deletion_policy \
        == "Delete"
    assert parse(body(hbase={"thrift": {"host": "h"}, "tableDeletionPolicy": "Delete"}), CFG).hbase.deletion_policy \
        == "Delete"


@pytest.mark.parametrize(("spec", "message"), [
    ({"flink": {"timeZone": "Mars/Olympus"}}, "not a known IANA time zone"),
    ({"flink": {"parallelism": 4, "taskManager": {"replicas": 1, "taskSlots": 2}}}, "flink.parallelism"),
    ({"bridge": {"ingress": {"enabled": True}}}, "bridge.ingress.host is required"),
    ({"bridge": {"ingress": {"enabled": True, "host": "a.b"}}}, "bridge.authSecretRef is required"),
    ({"kafka": {}}, "kafka.bootstrapServers"),
    ({"kafka": {"bootstrapServers": "k", "strimziClusterRef": {"name": "c"}}}, "exactly one"),
    ({"kafka": {"bootstrapServers": "k", "topicPrefix": "a/b"}}, "may only contain"),
    ({"kafka": {"bootstrapServers": "k", "topicPrefix": "ab\n"}}, "may only contain"),
    ({"kafka": {"bootstrapServers": "k", "topics": [{"name": "raw", "retentionMs": 1,
                                                      "config": {"retention.ms": "2"}}]}}, "not both"),
    ({"hbase": {}}, "hbase.thrift.host is required"),
])
def test_invalid_specs_are_refused_with_a_clear_message(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidSpec, match=message.replace(".", r"\.")):
        parse(body(**spec), CFG)


def test_long_names_are_refused() -> None:
    b = body()
    b["metadata"]["name"] = "x" * 41
    with pytest.raises(InvalidSpec, match="at most 40"):
        parse(b, CFG)


@functools.cache
def _crd_spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load((REPO / "crds" / "iotpipelines.iotpipe.dev.yaml").read_text())
    return dict(crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"])


def _crd_defaults(schema: dict[str, Any], path: str = "") -> dict[str, Any]:
    out = {}
    for name, prop in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        if "default" in prop and prop["default"] != {}:
            out[here] = prop["default"]
        out.update(_crd_defaults(prop, here))
    return out


def test_crd_defaults_mean_the_same_as_parse_defaults() -> None:
    """The API server fills the CRD's defaults; parse() must read an object without them the same way."""
    defaults = _crd_defaults(_crd_spec_schema())
    filled: dict[str, Any] = copy.deepcopy(body()["spec"])
    for dotted, value in defaults.items():
        node = filled
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node.setdefault(leaf, value)
    b = body()
    b["spec"] = filled
    assert parse(b, CFG) == parse(body(), CFG)
    assert len(defaults) > 30  # the walk really found the defaults


def _changed(value: Any) -> Any:
    """A value of the same type that differs from ``value``."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, (int, float)):
        return value + 1
    return f"{value}-other"


def test_parse_reads_every_field_the_crd_gives_a_default() -> None:
    """A CRD default that parse() ignored (a misspelt key) would pass the test above: change each one and look."""
    defaults = _crd_defaults(_crd_spec_schema())
    plain = parse(body(), CFG)
    ignored = []
    for dotted, value in defaults.items():
        b = body()
        node = b["spec"]
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _changed(value)
        try:
            if parse(b, CFG) == plain:
                ignored.append(dotted)
        except InvalidSpec:
            continue  # read, and refused (e.g. a time zone that does not exist)
    assert ignored == []


def test_site_zones_are_validated_and_rendered_for_the_job_simulators_and_bridge() -> None:
    from iot_operator.builders import desired_children
    from iotcommon.zones import parse_site_zones

    p = parse(body(siteZones={"site-00002": "America/New_York", "site-00001": "Asia/Kolkata"}), CFG)
    assert p.site_zones == (("site-00001", "Asia/Kolkata"), ("site-00002", "America/New_York"))
    expected = "site-00001=Asia/Kolkata,site-00002=America/New_York"
    seen = []
    for flink_operator in (False, True):
        for child in desired_children(p, flink_operator):
            spec = child.get("spec") or {}
            pod = (spec.get("template") or spec.get("podTemplate") or {}).get("spec")
            if not pod or child["metadata"]["name"].endswith("-sync"):
                continue
            env = {e["name"]: e.get("value") for e in pod["containers"][0]["env"]}
            assert env["IOTPIPE_SITE_ZONES"] == expected, child["metadata"]["name"]
            assert parse_site_zones(env["IOTPIPE_SITE_ZONES"]) == dict(p.site_zones)
            seen.append(child["metadata"]["name"])
    assert sorted(set(seen)) == ["plant-1-bridge", "plant-1-flink", "plant-1-flink-jobmanager",
                                 "plant-1-flink-taskmanager", "plant-1-simulator"]
    with pytest.raises(InvalidSpec, match=r"spec.siteZones\[site-00003\]: unknown time zone 'Mars/Olympus'"):
        parse(body(siteZones={"site-00003": "Mars/Olympus"}), CFG)
    with pytest.raises(InvalidSpec, match="not a valid site id"):
        parse(body(siteZones={"-bad": "UTC"}), CFG)
    assert parse(body(), CFG).site_zones_text == ""
