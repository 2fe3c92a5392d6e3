"""What each JVM service of the local stack runs: its command line, its config files, its ports and where it
listens (pure: no I/O; `stack.LocalStack` writes the files and supervises the processes)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from iotcommon.errors import StackError
from iotpipe_stack import render
from iotpipe_stack.settings import StackSettings

#: JVM components, in start order
SERVICES: tuple[str, ...] = ("kafka", "hbase", "thrift")


@dataclass(frozen=True)
class Binaries:
    """Where the installed programs are (what `install.Installed` provides)."""

    java: Path  # the java executable
    kafka_lib: Path
    hbase_lib: Path


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what StorageTool random-uuid prints).

    Like Kafka's own generator, never one that starts with '-': ``kafka-storage format -t -abc...`` reads it as an
    option and fails (about one start in 64 otherwise)."""
    while True:
        cid = base64.urlsafe_b64encode(random_bytes()).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def _check(name: str) -> None:
    if name not in SERVICES:
        raise StackError(f"unknown component {name!r}")


def _conf(s: StackSettings, name: str) -> Path:
    return s.conf_dir / ("kafka" if name == "kafka" else "hbase")  # Thrift runs on HBase's config


def jvm(s: StackSettings, b: Binaries, name: str, heap: str) -> list[str]:
    """The java command and the options every component shares (heap, log4j2 config, names for the logs)."""
    return [
        str(b.java),
        f"-Xmx{heap}",
        *render.COMMON_JVM_FLAGS,
        *render.JIT_FLAGS[s.jit],
        f"-Dlog4j2.configurationFile={(_conf(s, name) / 'log4j2.properties').as_uri()}",
        f"-Diotpipe.home={s.home}",
        f"-Diotpipe.component={name}",
    ]


def argv(s: StackSettings, b: Binaries, name: str) -> list[str]:
    """The command line of one service."""
    _check(name)
    conf = _conf(s, name)
    if name == "kafka":
        return [
            *jvm(s, b, "kafka", s.kafka_heap),
            f"-Dkafka.logs.dir={s.logs_dir}",
            "-cp", f"{b.kafka_lib}/*",
            "kafka.Kafka", str(conf / "server.properties"),
        ]  # fmt: skip
    hbase = [*render.HBASE_JDK17_FLAGS, f"-Dhbase.log.dir={s.logs_dir}", "-cp", f"{conf}:{b.hbase_lib}/*"]
    if name == "hbase":
        return [*jvm(s, b, "hbase", s.hbase_heap), *hbase, "org.apache.hadoop.hbase.master.HMaster", "start"]
    return [
        *jvm(s, b, "thrift", s.thrift_heap), *hbase,
        "org.apache.hadoop.hbase.thrift.ThriftServer",
        "-b", s.host, "-p", str(s.thrift_port), "-threadpool", "start",
    ]  # fmt: skip


#: Kafka's transaction protocol version for new clusters (KIP-890). Kafka 4.x formats new clusters with version 2,
#: where every commit and abort bumps the producer epoch. The Flink Kafka sink recovers by committing again the
#: transactions of the checkpoint it restores (with the producer id and epoch it saved); with version 2 such a
#: commit of a transaction that was already completed can fail with InvalidPidMappingException, which the sink
#: treats as fatal: the restored job then restarts forever (FLINK-39072). Version 1 keeps that second commit
#: idempotent. The image's entrypoint (images/kafka/kafka-entrypoint.sh) formats with the same version.
KAFKA_TRANSACTION_VERSION = 1


def kafka_format_argv(s: StackSettings, b: Binaries, cluster_id: str) -> list[str]:
    """Formats Kafka's (KRaft) storage once, before the first start."""
    return [
        *jvm(s, b, "kafka-format", "256m"),
        "-cp", f"{b.kafka_lib}/*", "kafka.tools.StorageTool", "format",
        "-t", cluster_id, "-c", str(_conf(s, "kafka") / "server.properties"),
        "--feature", f"transaction.version={KAFKA_TRANSACTION_VERSION}", "--ignore-formatted",
    ]  # fmt: skip


def data_dir(s: StackSettings, name: str) -> Path:
    return s.data_dir / ("kafka" if name == "kafka" else "hbase")


def config_files(s: StackSettings, name: str) -> dict[Path, str]:
    """The config files a service reads, path -> text, written before every start."""
    _check(name)
    conf, data = _conf(s, name), data_dir(s, name)
    if name == "kafka":
        return {conf / "server.properties": render.kafka_server_properties(s, data),
                conf / "log4j2.properties": render.KAFKA_LOG4J2}
    return {conf / "hbase-site.xml": render.hbase_site_xml(s, data), conf / "log4j2.properties": render.HBASE_LOG4J2}


def ports(s: StackSettings, name: str) -> list[tuple[str, int]]:
    """(what, port) of every port a service binds on `s.host`."""
    _check(name)
    return {
        "kafka": [("Kafka", s.kafka_port), ("Kafka controller", s.kafka_controller_port)],
        "hbase": [("HBase ZooKeeper", s.zk_port)],
        "thrift": [("HBase Thrift", s.thrift_port)],
    }[name]


def where(s: StackSettings, name: str) -> str:
    """Where a service is, for status lines ('' for pipeline processes)."""
    h = s.host
    return {
        "kafka": f"{h}:{s.kafka_port} (controller {h}:{s.kafka_controller_port})",
        "hbase": f"zookeeper {h}:{s.zk_port}, data {s.data_dir / 'hbase'}",
        "thrift": f"{h}:{s.thrift_port}",
    }.get(name, "")
