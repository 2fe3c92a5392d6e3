"""The platform chart's HBase pod, run as plain processes: no container engine runs here, so this test takes the chart's
rendered hbase-site.xml and log4j2.properties, and the two containers' commands (the image's ENTRYPOINT for the
`hbase` container, `command` + `args` for `thrift`), and runs them with the same jars the image bundles (the local
stack's HBase pom, which images/hbase/Dockerfile copies) and the JVM options the Dockerfile sets. Then happybase talks
to the Thrift server: create a table, write, read back.

Differences from the pod, all forced by the test rules: /data becomes a temporary directory, the ports are free
loopback ports (set through the chart's own values), and the Thrift server binds to loopback.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import happybase
import pytest
import yaml

from iotpipe_stack.install import fetch_bundle, find_java
from iotpipe_stack.ports import free_ports
from iotpipe_stack.settings import resolve

pytestmark = [pytest.mark.helm, pytest.mark.hbase, pytest.mark.slow]

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "images" / "hbase" / "Dockerfile"
IMAGE_CLASSPATH = "/opt/hbase/conf:/opt/hbase/lib/*"
READY_WITHIN_S = 240.0  # a bound on waiting for start-up, not a performance assertion


def dockerfile_entrypoint_and_jvm_options() -> tuple[list[str], str]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    entrypoint = json.loads(re.findall(r"^ENTRYPOINT (.*)$", text, re.M)[-1])
    options = re.search(r'^ENV JDK_JAVA_OPTIONS="([^"]*)"', text, re.M)
    assert options, "images/hbase/Dockerfile sets JDK_JAVA_OPTIONS"
    return list(entrypoint), options.group(1)


@contextlib.contextmanager
def running(argv: list[str], env: dict[str, str], log: Path, cwd: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=30)


def tail(path: Path, lines: int = 40) -> str:
    return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])


def probe(port: int) -> dict[bytes, bytes]:
    """Create a table through Thrift, write a cell, read the row back, drop the table."""
    conn = happybase.Connection("127.0.0.1", port, timeout=20000)
    try:
        if b"chart_probe" not in conn.tables():
            conn.create_table("chart_probe", {"d": {"max_versions": 1}})
        table = conn.table("chart_probe")
        table.put(b"row-1", {b"d:v": b"42"})
        row: dict[bytes, bytes] = table.row(b"row-1")
        conn.disable_table("chart_probe")
        conn.delete_table("chart_probe")
        return row
    finally:
        conn.close()


def test_chart_hbase_pod_runs_standalone_hbase_and_thrift(helm: Any, tmp_path: Path) -> None:
    zk_port, thrift_port = free_ports(2)
    values = {
        "kafka": {"enabled": False},
        "grafana": {"enabled": False},
        "hbase": {
            "heap": "512m",
            "thrift": {"port": thrift_port, "heap": "256m"},
            "config": {
                "hbase.zookeeper.property.clientPort": str(zk_port),
                "hbase.regionserver.thrift.ipaddress": "127.0.0.1",
            },
        },
    }
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump(values), encoding="utf-8")
    docs = helm.render("iotpipe-platform", values=[values_file], release="hb")
    conf_map = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-hbase-conf"))
    sts = next(d for d in docs if d["kind"] == "StatefulSet")
    containers = {c["name"]: c for c in sts["spec"]["template"]["spec"]["containers"]}

    data = tmp_path / "data"
    data.mkdir()
    conf = tmp_path / "conf"
    conf.mkdir()
    site = conf_map["data"]["hbase-site.xml"]
    assert "file:///data/hbase" in site
    (conf / "hbase-site.xml").write_text(site.replace("/data/", f"{data}/"), encoding="utf-8")
    (conf / "log4j2.properties").write_text(conf_map["data"]["log4j2.properties"], encoding="utf-8")

    lib = fetch_bundle(resolve(os.environ, {}).cache, "hbase")
    java = str(find_java().executable)
    entrypoint, jdk_options = dockerfile_entrypoint_and_jvm_options()

    def local(argv: list[str]) -> list[str]:
        assert argv[0] == "java", argv
        return [java, *(f"{conf}:{lib}/*" if a == IMAGE_CLASSPATH else a for a in argv[1:])]

    def env_of(container: dict[str, Any]) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("JAVA_TOOL_OPTIONS", "JDK_JAVA_OPTIONS"))}
        env["JDK_JAVA_OPTIONS"] = jdk_options
        env.update({e["name"]: e["value"] for e in container.get("env", []) if "value" in e})
        return env

    master_argv = local([*entrypoint, *containers["hbase"]["args"]])
    thrift_argv = local([*containers["thrift"]["command"], *containers["thrift"]["args"]])
    assert thrift_argv[-3:] == ["start", "-p", str(thrift_port)]

    with (
        running(master_argv, env_of(containers["hbase"]), tmp_path / "hbase.log", tmp_path) as master,
        running(thrift_argv, env_of(containers["thrift"]), tmp_path / "thrift.log", tmp_path) as thrift,
    ):
        deadline = time.monotonic() + READY_WITHIN_S
        last_error = ""
        while True:
            for proc, log in ((master, "hbase.log"), (thrift, "thrift.log")):
                if proc.poll() is not None:
                    pytest.fail(f"{log} process exited with {proc.returncode}:\n{tail(tmp_path / log)}")
            try:
                row = probe(thrift_port)
                break
            except Exception as exc:  # not serving yet: TTransportException, OSError, an HBase IOError, ...
                last_error = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                pytest.fail(
                    f"HBase from the chart's config did not serve Thrift within {READY_WITHIN_S:.0f} s ({last_error})"
                    f"\n--- hbase.log\n{tail(tmp_path / 'hbase.log')}\n--- thrift.log\n{tail(tmp_path / 'thrift.log')}"
                )
            time.sleep(2)
    assert row == {b"d:v": b"42"}
    assert (data / "hbase").is_dir(), "HBase wrote its root directory under the chart's /data"
