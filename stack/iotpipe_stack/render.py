"""Config files of the JVM components, rendered as text (pure: no I/O)."""

from __future__ import annotations

from pathlib import Path
from xml.sax.saxutils import escape

from iotpipe_stack.settings import StackSettings

#: flags `bin/hbase` adds on JDK 11+ (add_jdk11_jvm_flags)
HBASE_JDK17_FLAGS: tuple[str, ...] = (
    "-Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true",
    "--add-modules", "jdk.unsupported",
    "--add-opens", "java.base/java.io=ALL-UNNAMED",
    "--add-opens", "java.base/java.nio=ALL-UNNAMED",
    "--add-opens", "java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang=ALL-UNNAMED",
    "--add-opens", "java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens", "java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens", "java.base/java.util=ALL-UNNAMED",
    "--add-opens", "java.base/java.util.concurrent=ALL-UNNAMED",
    "--add-exports", "java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports", "java.security.jgss/sun.security.krb5=ALL-UNNAMED",
    "--add-exports", "java.base/sun.net.dns=ALL-UNNAMED",
    "--add-exports", "java.base/sun.net.util=ALL-UNNAMED",
)  # fmt: skip

#: JVM options for every component: small footprint on a shared 2-core machine
COMMON_JVM_FLAGS: tuple[str, ...] = (
    "-XX:+UseSerialGC",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
    "-Djava.net.preferIPv4Stack=true",
)


#: per IOTPIPE_JIT: "quick" stops at C1 (the default: quick starts). C2 code costs less CPU per message once hot (HBase
#: + Thrift ~21 against ~17 us per row in bench_sync; bench-e2e at 30,000/s: HBase 19 against 30 % of a core), but
#: compiling costs 2-3x as much for minutes after a start. bench-e2e runs "full" after a 180 s warm-up.
JIT_FLAGS: dict[str, tuple[str, ...]] = {"full": (), "quick": ("-XX:TieredStopAtLevel=1",)}


def properties(entries: dict[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in entries.items())


def kafka_server_properties(s: StackSettings, log_dir: Path) -> str:
    h = s.host
    return properties(
        {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{h}:{s.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{h}:{s.kafka_port},CONTROLLER://{h}:{s.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{h}:{s.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(log_dir),
            "num.partitions": "1",
            "auto.create.topics.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "log.cleaner.dedupe.buffer.size": "1048577",
            "num.network.threads": "2",
            "num.io.threads": "2",
            "num.recovery.threads.per.data.dir": "1",
        }
    )


def log4j2_properties(root_level: str, quiet: dict[str, str]) -> str:
    """A console log4j2 config (stdout goes to the component's log file)."""
    lines = [
        "status = warn",
        "appender.console.type = Console",
        "appender.console.name = console",
        "appender.console.target = SYSTEM_OUT",
        "appender.console.layout.type = PatternLayout",
        "appender.console.layout.pattern = %d{ISO8601} %-5p [%t] %c{1.}: %m%n",
        f"rootLogger = {root_level},console",
    ]
    for i, (name, level) in enumerate(sorted(quiet.items())):
        lines += [f"logger.l{i}.name = {name}", f"logger.l{i}.level = {level}"]
    return "\n".join(lines) + "\n"


KAFKA_LOG4J2 = log4j2_properties("INFO", {"kafka": "WARN", "org.apache.kafka": "WARN", "state.change.logger": "WARN"})
HBASE_LOG4J2 = log4j2_properties(
    "INFO",
    {
        "org.apache.zookeeper": "WARN",
        "org.apache.hadoop": "WARN",
        "org.apache.hadoop.hbase": "INFO",
        "org.apache.hadoop.hbase.metrics": "WARN",
        "org.apache.hadoop.hbase.ChoreService": "WARN",
    },
)


def hadoop_site_xml(props: dict[str, str]) -> str:
    body = "".join(
        f"  <property><name>{escape(k)}</name><value>{escape(v)}</value></property>\n" for k, v in props.items()
    )
    return f'<?xml version="1.0"?>\n<configuration>\n{body}</configuration>\n'


HBASE_INIT_TIMEOUT_MS = 900_000


def hbase_site_properties(s: StackSettings, data: Path) -> dict[str, str]:
    return {
        "hbase.cluster.distributed": "false",
        "hbase.unsafe.stream.capability.enforce": "false",
        "hbase.tmp.dir": str(data / "tmp"),
        "hbase.rootdir": (data / "hbase").as_uri(),
        "hbase.zookeeper.property.dataDir": str(data / "zk"),
        "hbase.zookeeper.quorum": s.host,
        "hbase.zookeeper.property.clientPort": str(s.zk_port),
        # master and RegionServer RPC on random free ports (LocalHBaseCluster), web UIs off
        "hbase.localcluster.assign.random.ports": "true",
        "hbase.master.ipc.address": s.host,
        "hbase.regionserver.ipc.address": s.host,
        "hbase.master.hostname": "localhost",
        "hbase.unsafe.regionserver.hostname": "localhost",
        "hbase.master.info.port": "-1",
        "hbase.regionserver.info.port": "-1",
        "hbase.wal.provider": "filesystem",
        "hbase.regionserver.thrift.ipaddress": s.host,
        "hbase.regionserver.thrift.port": str(s.thrift_port),
        "hbase.thrift.info.port": "-1",
        # idle happybase connections are not cut after 60 s
        "hbase.thrift.server.socket.read.timeout": "3600000",
        "hbase.regionserver.handler.count": "10",
        "hbase.master.wait.on.regionservers.mintostart": "1",
        # after a crash (kill -9) the restarted master first recovers the dead region server's WALs and hbase:meta;
        # on a busy 2-core machine that took longer than LocalHBaseCluster's default 200 s, and the process gave up
        "hbase.master.init.timeout.localHBaseCluster": str(HBASE_INIT_TIMEOUT_MS),
        # after kill -9 the restarted master must split the dead region server's WALs (hbase:meta's first). With
        # procedure-based splitting (2.6's default) the region server reports each split done with the master RPC
        # ReportProcedureDone, which waits in the master's default call queue. Clients that list the tables
        # (Thrift `tables()`: probes, the sync worker's reconnects) fill every default handler: the restarted
        # master reads each table's state from hbase:meta, which is still on the dead server, with 45 retries
        # (minutes). The report times out, meta is never reassigned, the master never finishes initialising
        # (docs/chaos.md). Splitting coordinated through ZooKeeper needs no master RPC.
        "hbase.split.wal.zk.coordinated": "true",
        # one RegionServer: splitting a region buys no parallelism, and the daughters' compactions then rewrite every
        # file of the region at once (bench-e2e at 20,000 readings/s: the raw table's first split, at ~350 MB, and the
        # two compactions after it kept HBase at 50 % of a core for 25 s while the rows written per second halved).
        # Regions split at a constant 10 GiB instead of from 256 MB up.
        "hbase.regionserver.region.split.policy": "org.apache.hadoop.hbase.regionserver.ConstantSizeRegionSplitPolicy",
        "hbase.hregion.max.filesize": str(10 * 1024**3),
    }


def hbase_site_xml(s: StackSettings, data: Path) -> str:
    return hadoop_site_xml(hbase_site_properties(s, data))
