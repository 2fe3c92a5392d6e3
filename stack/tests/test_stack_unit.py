"""Unit tests of the stack manager's pure parts (no services): settings, config rendering, ports, CLI, supervisor."""

from __future__ import annotations

import os
import socket
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import psutil
import pytest

from iotcommon.errors import ConfigError, StackError
from iotpipe_stack import cli, install, render, supervisor
from iotpipe_stack.ports import check_ports_free, free_ports, is_listening, is_port_free
from iotpipe_stack.settings import StackSettings, resolve
from iotpipe_stack.stack import new_cluster_id


def settings(tmp_path: Path, **kw: str) -> StackSettings:
    return resolve({}, {"home": str(tmp_path / "home"), **kw}, cwd=tmp_path)


# ---------------------------------------------------------------- settings
def test_defaults_are_the_documented_ones(tmp_path: Path) -> None:
    s = resolve({}, cwd=tmp_path)
    assert s.home == tmp_path / ".iotpipe"
    assert s.cache == Path("~/.cache/iotpipe").expanduser()
    assert (s.kafka_port, s.kafka_controller_port, s.zk_port, s.thrift_port) == (9092, 9093, 2181, 9090)
    assert s.bootstrap == "127.0.0.1:9092"
    assert s.flink_venv.name == ".venv-flink"
    assert s.jit == "quick"


def test_flag_beats_env_beats_default(tmp_path: Path) -> None:
    env = {"IOTPIPE_KAFKA_PORT": "19092", "IOTPIPE_HBASE_PORT": "19090", "IOTPIPE_HOME": "rel/home"}
    s = resolve(env, {"kafka_port": "29092", "thrift_port": None}, cwd=tmp_path)
    assert s.kafka_port == 29092
    assert s.thrift_port == 19090
    assert s.home == tmp_path / "rel" / "home"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IOTPIPE_KAFKA_PORT": "abc"}, "IOTPIPE_KAFKA_PORT"),
        ({"IOTPIPE_ZK_PORT": "70000"}, "1..65535"),
        ({"IOTPIPE_KAFKA_HEAP": "lots"}, "IOTPIPE_KAFKA_HEAP"),
        ({"IOTPIPE_HBASE_PORT": "9092"}, "distinct"),
        ({"IOTPIPE_START_TIMEOUT": "0"}, "IOTPIPE_START_TIMEOUT"),
        ({"IOTPIPE_JIT": "c2"}, "IOTPIPE_JIT='c2': expected one of full, quick"),
    ],
)
def test_invalid_settings_raise_config_error(env: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve(env, cwd=tmp_path)


# ---------------------------------------------------------------- rendering
def parse_properties(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))


def test_kafka_properties_bind_loopback_on_the_configured_ports(tmp_path: Path) -> None:
    s = settings(tmp_path, kafka_port="19092", kafka_controller_port="19093")
    props = parse_properties(render.kafka_server_properties(s, tmp_path / "kdata"))
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["process.roles"] == "broker,controller"
    assert props["log.dirs"] == str(tmp_path / "kdata")
    assert props["offsets.topic.replication.factor"] == "1"


def test_hbase_site_is_standalone_on_loopback(tmp_path: Path) -> None:
    s = settings(tmp_path, zk_port="12181", thrift_port="19090")
    root = ET.fromstring(render.hbase_site_xml(s, tmp_path / "hdata"))  # noqa: S314 (our own output)
    props = {p.findtext("name"): p.findtext("value") for p in root.iter("property")}
    assert props["hbase.cluster.distributed"] == "false"
    assert props["hbase.zookeeper.property.clientPort"] == "12181"
    assert props["hbase.zookeeper.quorum"] == "127.0.0.1"
    assert props["hbase.rootdir"] == (tmp_path / "hdata" / "hbase").as_uri()
    assert props["hbase.master.info.port"] == "-1"
    assert props["hbase.localcluster.assign.random.ports"] == "true"
    # a crash recovery under load gets 15 min, not LocalHBaseCluster's 200 s (the chaos run's HBase kill gave up)
    assert int(props["hbase.master.init.timeout.localHBaseCluster"]) >= 600_000
    # a restarted master splits the dead server's WALs through ZooKeeper, not through master RPCs that clients listing
    # the tables can starve (docs/chaos.md; stack/tests/test_stack_hbase_restart.py runs it)
    assert props["hbase.split.wal.zk.coordinated"] == "true"
    # one RegionServer: regions are not split from 256 MB up (the split's compactions stalled bench-e2e's writes)
    assert props["hbase.regionserver.region.split.policy"].endswith(".ConstantSizeRegionSplitPolicy")
    assert int(props["hbase.hregion.max.filesize"]) >= 10 * 1024**3


def test_log4j2_properties_name_each_logger() -> None:
    text = render.log4j2_properties("INFO", {"a.b": "WARN", "c": "ERROR"})
    props = {k.strip(): v.strip() for k, v in (line.split("=", 1) for line in text.splitlines())}
    assert props["rootLogger"] == "INFO,console"
    names = {props[k]: props[k.replace(".name", ".level")] for k in props if k.endswith(".name") and "logger" in k}
    assert names == {"a.b": "WARN", "c": "ERROR"}


def test_cluster_id_is_22_url_safe_chars() -> None:
    cid = new_cluster_id()
    assert len(cid) == 22
    assert set(cid) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def test_cluster_id_never_starts_with_a_dash() -> None:
    # 0xf8 encodes to "-" as the first base64url character; the generator must draw again
    draws = iter([b"\xf8" + bytes(15), bytes(16)])
    cid = new_cluster_id(lambda: next(draws))
    assert cid == "A" * 22


# ---------------------------------------------------------------- installers (pure parts)
@pytest.mark.parametrize(
    ("output", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_392"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ("garbage", None),
    ],
)
def test_parse_java_major(output: str, major: int | None) -> None:
    assert install.parse_java_major(output) == major


def test_maven_failures_are_classified() -> None:
    assert "unreachable" in install.classify_maven_failure("Could not transfer artifact x from/to central")
    assert "unreachable" in install.classify_maven_failure("No plugin found for prefix 'dependency' in ...")
    assert "missing" in install.classify_maven_failure("Could not find artifact org.x:y:jar:1 in central")
    assert install.classify_maven_failure("BUILD FAILURE") == "Maven failed"


def test_java_missing_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="Java not found"):
        install.find_java({"PATH": str(tmp_path)})


def test_bundle_dir_is_keyed_by_the_pom(tmp_path: Path) -> None:
    assert install.bundle_dir(tmp_path, "kafka") != install.bundle_dir(tmp_path, "hbase")
    assert install.bundle_dir(tmp_path, "kafka") == install.bundle_dir(tmp_path, "kafka")
    assert "4.1.1" in install.pom_text("kafka")


# ---------------------------------------------------------------- ports
def test_port_checks_see_a_listener() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        assert not is_port_free(port)
        assert is_listening(port)
        with pytest.raises(StackError, match=f"Kafka port {port}"):
            check_ports_free([("Kafka", port)])
    assert is_port_free(port)


def test_free_ports_are_distinct() -> None:
    ports = free_ports(4)
    assert len(set(ports)) == 4
    assert all(is_port_free(p) for p in ports)


# ---------------------------------------------------------------- CLI parsing
def test_cli_parses_subcommands_and_flags() -> None:
    args = cli.build_parser().parse_args(["local", "up", "--kafka-port", "19092", "--no-flink"])
    assert (args.command, args.action, args.kafka_port, args.no_flink) == ("local", "up", "19092", True)
    args = cli.build_parser().parse_args(["run", "--detach"])
    assert (args.command, args.detach) == ("run", True)


def test_cli_unknown_option_exits_2() -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["local", "up", "--bogus"])
    assert e.value.code == 2


def test_cli_invalid_setting_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["local", "status", "--kafka-port", "nope"], environ={"IOTPIPE_HOME": str(tmp_path)})
    assert code == 2
    assert "IOTPIPE_KAFKA_PORT" in capsys.readouterr().err


def test_cli_down_on_an_empty_home_is_a_no_op(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["local", "down", "--home", str(tmp_path / "nothing")], environ={}) == 0
    assert "nothing was running" in capsys.readouterr().out


def test_down_wipe_deletes_data_configs_and_stream_job_checkpoints(tmp_path: Path) -> None:
    home = tmp_path / "home"
    kept = [home / "logs" / "kafka.log"]
    wiped = [home / "data" / "kafka" / "meta.properties", home / "conf" / "hbase-site.xml",
             home / "stream_job" / "checkpoints" / "iotpipe" / "chk-7" / "_metadata"]
    for path in kept + wiped:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    for run_dir_exists in (True, False):  # a job run without `iotpipe local up` has no run/ directory
        if run_dir_exists:
            (home / "run").mkdir()
        else:
            for path in wiped:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text("x")
        assert cli.main(["local", "down", "--wipe", "--home", str(home)], environ={}) == 0
        assert [p for p in wiped if p.exists()] == []
        assert not (home / "stream_job" / "checkpoints").exists()
        assert all(p.exists() for p in kept)


# ---------------------------------------------------------------- supervisor (real child processes, no services)
def test_supervisor_starts_logs_and_stops_a_process_group(tmp_path: Path) -> None:
    files = supervisor.ProcFiles("sleeper", tmp_path / "run" / "s.pid", tmp_path / "logs" / "s.log")
    code = "import subprocess,sys,time; print('hello', flush=True); subprocess.Popen(['sleep','300']); time.sleep(300)"
    pid = supervisor.start(files, [sys.executable, "-c", code])
    assert supervisor.running_pid(files.pid_file) == pid
    with pytest.raises(StackError, match="already running"):
        supervisor.start(files, [sys.executable, "-c", "pass"])
    for _ in range(100):
        if "hello" in supervisor.tail(files.log_file) and supervisor.descendants(pid):
            break
        import time

        time.sleep(0.1)
    assert "hello" in supervisor.tail(files.log_file)
    child = supervisor.descendants(pid)[0]

    assert supervisor.stop(files, timeout=10)

    assert supervisor.running_pid(files.pid_file) is None
    assert not files.pid_file.exists()
    assert not supervisor.group_alive(pid)
    assert not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text().split(")")[1][:3]


def test_a_stale_pid_file_is_not_trusted(tmp_path: Path) -> None:
    pid_file = tmp_path / "x.pid"
    pid_file.write_text("1 12345\n")  # pid 1 exists, but with another start time
    assert supervisor.running_pid(pid_file) is None
    assert not supervisor.stop(supervisor.ProcFiles("x", pid_file, tmp_path / "x.log"))


def test_a_step_of_the_wall_clock_does_not_hide_a_running_process(tmp_path: Path) -> None:
    """psutil's create time moves with the wall clock (its boot time is the wall clock minus the uptime); the pid
    file's boot ticks do not. Seen in CI: the VM's wall clock moved 84 s, and the cluster's stop signalled none of its
    processes (all still running after it). A pid file read after such a step has a create time 84 s off."""
    files = supervisor.ProcFiles("sleeper", tmp_path / "run" / "s.pid", tmp_path / "logs" / "s.log")
    pid = supervisor.start(files, [sys.executable, "-c", "import time; time.sleep(300)"])
    pid_text, created, *rest = files.pid_file.read_text().split()
    files.pid_file.write_text(" ".join([pid_text, repr(float(created) - 84.0), *rest]) + "\n")

    assert supervisor.running_pid(files.pid_file) == pid
    assert supervisor.stop(files, timeout=10)
    assert not supervisor.group_alive(pid)


def test_boot_start_tells_a_recycled_pid_or_another_boot_and_agrees_with_psutil(tmp_path: Path) -> None:
    start = supervisor.boot_start(1)
    assert start is not None
    boot_id, ticks = start.rsplit(":", 1)
    since_boot = psutil.Process(1).create_time() - psutil.boot_time()  # independent reading of the same start
    assert abs(int(ticks) / os.sysconf("SC_CLK_TCK") - since_boot) < 0.05
    created = psutil.Process(1).create_time()
    pid_file = tmp_path / "x.pid"
    pid_file.write_text(f"1 {created!r} 0.0 boot-start={boot_id}:{int(ticks) + 1}\n")
    assert supervisor.running_pid(pid_file) is None  # same pid and create time, another start: not ours
    pid_file.write_text(f"1 {created!r} 0.0 boot-start=another-boot:{ticks}\n")
    assert supervisor.running_pid(pid_file) is None  # written before a reboot
    pid_file.write_text(f"1 0.0 0.0 boot-start={start}\n")
    assert supervisor.running_pid(pid_file) == 1
    assert supervisor.recorded_stop_timeout(pid_file) is None  # 0.0: no stop timeout was declared


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text("".join(f"line {i}\n" for i in range(100)))
    assert supervisor.tail(log, 3) == "line 97\nline 98\nline 99"
    assert supervisor.tail(tmp_path / "missing.log") == ""


def test_supervisor_kill_crashes_the_whole_group_and_the_process_can_start_again(tmp_path: Path) -> None:
    files = supervisor.ProcFiles("crasher", tmp_path / "run" / "c.pid", tmp_path / "logs" / "c.log")
    code = "import subprocess,time; subprocess.Popen(['sleep','300']); time.sleep(300)"
    pid = supervisor.start(files, [sys.executable, "-c", code])
    import time

    deadline = time.monotonic() + 60
    while not supervisor.descendants(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    child = supervisor.descendants(pid)[0]
    assert supervisor.rss_bytes(pid) > supervisor.rss_bytes(child) > 0  # the leader and its child

    assert supervisor.kill(files)

    assert supervisor.running_pid(files.pid_file) is None
    assert files.pid_file.exists()  # like after a real crash
    assert not supervisor.group_alive(pid)
    assert supervisor.rss_bytes(child) == 0
    assert not supervisor.kill(files)  # nothing left to kill
    again = supervisor.start(files, [sys.executable, "-c", "import time; time.sleep(300)"])
    assert supervisor.running_pid(files.pid_file) == again != pid
    assert supervisor.stop(files, timeout=10)
