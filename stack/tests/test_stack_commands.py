"""What each JVM service of the local stack runs (iotpipe_stack.commands, pure) and the files LocalStack.prepare
writes from it. No process is started."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from iotcommon.errors import StackError
from iotpipe_stack import commands, probes
from iotpipe_stack.settings import StackSettings, resolve
from iotpipe_stack.stack import LocalStack

BIN = commands.Binaries(java=Path("/jdk/bin/java"), kafka_lib=Path("/kafka/lib"), hbase_lib=Path("/hbase/lib"))


def settings(tmp_path: Path) -> StackSettings:
    env = {"IOTPIPE_KAFKA_PORT": "19092", "IOTPIPE_KAFKA_CONTROLLER_PORT": "19093", "IOTPIPE_ZK_PORT": "12181",
           "IOTPIPE_HBASE_PORT": "19090", "IOTPIPE_THRIFT_HEAP": "300m"}
    return resolve(env, {"home": str(tmp_path / "home")}, cwd=tmp_path)


def test_kafka_runs_the_broker_class_on_its_own_config(tmp_path: Path) -> None:
    s = settings(tmp_path)
    argv = commands.argv(s, BIN, "kafka")
    home = tmp_path / "home"
    assert argv[:2] == ["/jdk/bin/java", "-Xmx512m"]
    assert argv[-2:] == ["kafka.Kafka", str(home / "conf" / "kafka" / "server.properties")]
    assert argv[argv.index("-cp") + 1] == "/kafka/lib/*"
    assert f"-Dlog4j2.configurationFile=file://{home}/conf/kafka/log4j2.properties" in argv
    assert f"-Dkafka.logs.dir={home / 'logs'}" in argv


def test_hbase_and_thrift_share_hbase_config_and_classpath(tmp_path: Path) -> None:
    s = settings(tmp_path)
    home = tmp_path / "home"
    hbase, thrift = commands.argv(s, BIN, "hbase"), commands.argv(s, BIN, "thrift")
    for argv in (hbase, thrift):
        assert argv[argv.index("-cp") + 1] == f"{home}/conf/hbase:/hbase/lib/*"
        assert f"-Dlog4j2.configurationFile=file://{home}/conf/hbase/log4j2.properties" in argv
        assert "java.base/java.nio=ALL-UNNAMED" in argv  # the JDK 17 flags of bin/hbase
    assert hbase[1] == "-Xmx768m" and hbase[-2:] == ["org.apache.hadoop.hbase.master.HMaster", "start"]
    assert thrift[1] == "-Xmx300m"
    assert thrift[-7:] == ["org.apache.hadoop.hbase.thrift.ThriftServer", "-b", "127.0.0.1", "-p", "19090",
                           "-threadpool", "start"]


@pytest.mark.parametrize(("env", "c1_only"), [({}, True), ({"IOTPIPE_JIT": "quick"}, True),
                                                ({"IOTPIPE_JIT": "Full"}, False)])
def test_the_jit_setting_reaches_every_jvm(tmp_path: Path, env: dict[str, str], c1_only: bool) -> None:
    s = resolve(env, {"home": str(tmp_path / "home")}, cwd=tmp_path)
    for name in commands.SERVICES:
        assert ("-XX:TieredStopAtLevel=1" in commands.argv(s, BIN, name)) is c1_only, name


def test_kafka_storage_is_formatted_with_the_given_cluster_id(tmp_path: Path) -> None:
    argv = commands.kafka_format_argv(settings(tmp_path), BIN, "AbC_123")
    assert argv[argv.index("-t") + 1] == "AbC_123"
    assert argv[argv.index("-c") + 1] == str(tmp_path / "home" / "conf" / "kafka" / "server.properties")
    assert "kafka.tools.StorageTool" in argv and argv[-1] == "--ignore-formatted"
    # transactions version 1: the Flink sink's second commit of a restored transaction stays idempotent
    assert argv[argv.index("--feature") + 1] == "transaction.version=1"


def test_every_configured_port_belongs_to_exactly_one_service(tmp_path: Path) -> None:
    s = settings(tmp_path)
    ports = [port for name in commands.SERVICES for _, port in commands.ports(s, name)]
    assert sorted(ports) == [12181, 19090, 19092, 19093]
    assert commands.ports(s, "thrift") == [("HBase Thrift", 19090)]


def test_where_names_the_address_of_services_only(tmp_path: Path) -> None:
    s = settings(tmp_path)
    assert commands.where(s, "thrift") == "127.0.0.1:19090"
    assert commands.where(s, "kafka").startswith("127.0.0.1:19092 ")
    assert commands.where(s, "stream-job") == ""


def test_an_unknown_service_is_a_stack_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="unknown component 'zookeeper'"):
        commands.argv(settings(tmp_path), BIN, "zookeeper")


def test_prepare_writes_the_config_files_and_the_data_directory(tmp_path: Path) -> None:
    s = settings(tmp_path)
    LocalStack(s, progress=lambda _: None).prepare("thrift")
    conf = tmp_path / "home" / "conf" / "hbase"
    assert sorted(p.name for p in conf.iterdir()) == ["hbase-site.xml", "log4j2.properties"]
    assert "<name>hbase.regionserver.thrift.port</name><value>19090</value>" in (conf / "hbase-site.xml").read_text()
    assert (tmp_path / "home" / "data" / "hbase").is_dir()
    assert set(commands.config_files(s, "kafka")) == {tmp_path / "home" / "conf" / "kafka" / "server.properties",
                                                      tmp_path / "home" / "conf" / "kafka" / "log4j2.properties"}


def test_the_settings_a_stack_was_started_with_read_back_equal(tmp_path: Path) -> None:
    s = settings(tmp_path)
    text = s.to_json()
    assert json.loads(text)["home"] == str(tmp_path / "home") and json.loads(text)["thrift_heap"] == "300m"
    assert StackSettings.from_json(text) == s
    # a key an older or newer version wrote is ignored
    assert StackSettings.from_json(json.dumps({**json.loads(text), "gone": 1})) == s


def test_saved_settings_are_none_without_a_readable_state_file(tmp_path: Path) -> None:
    stack = LocalStack(settings(tmp_path), progress=lambda _: None)
    assert stack.saved_settings() is None
    stack.state_file.parent.mkdir(parents=True)
    stack.state_file.write_text("{not json")
    assert stack.saved_settings() is None


def test_probing_an_unknown_service_is_a_stack_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="unknown component 'zookeeper'"):
        probes.service_ready(settings(tmp_path), "zookeeper")
