"""The rendered FlinkDeployment checked by the Flink Kubernetes Operator's OWN validator class (DefaultValidator).

Maven Central serves org.apache.flink:flink-kubernetes-operator up to 1.7.0, whose API knows Flink versions up to
v1_19 and the Flink 1.x names of two keys. The objects are handed to it with those translated (the only changes):
``flinkVersion`` v2_x -> v1_19, ``execution.checkpointing.dir`` -> ``state.checkpoints.dir``,
``execution.checkpointing.savepoint-dir`` -> ``state.savepoints.dir``. Everything else (HA settings, job, resources,
pod template) goes in as rendered. The harness (flink_validator/Validate.java) is compiled once into $IOTPIPE_CACHE
against the jars Maven resolves for flink_validator/pom.xml (cached in $IOTPIPE_CACHE/m2).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from iot_operator.builders import desired_children
from iot_operator.config import OperatorConfig
from iot_operator.spec import parse
from iotpipe_stack.install import classify_maven_failure, file_lock, find_java

pytestmark = [pytest.mark.slow]  # java; the first run resolves the operator's jars with Maven (about 100 MB)

HERE = Path(__file__).parent / "flink_validator"
RENAMED_KEYS = {"execution.checkpointing.dir": "state.checkpoints.dir",
                "execution.checkpointing.savepoint-dir": "state.savepoints.dir"}
NEWEST_KNOWN_VERSION = "v1_19"


def _validator_command() -> list[str]:
    """java -cp <harness>:<operator jars> Validate, built once per content of the harness and its pom."""
    cache = Path(os.environ.get("IOTPIPE_CACHE") or Path.home() / ".cache" / "iotpipe")
    stamp = hashlib.sha256((HERE / "pom.xml").read_bytes() + (HERE / "Validate.java").read_bytes()).hexdigest()[:12]
    target = cache / "jars" / f"flink-validator-{stamp}"
    java = find_java()
    with file_lock(cache / "jars" / ".flink-validator.lock"):
        if not (target / ".complete").exists():
            mvn = shutil.which("mvn")
            if mvn is None:
                pytest.fail("Maven (`mvn`) is not on PATH: it fetches the Flink operator's jars once")
            target.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [mvn, "-B", "-q", "-Dstyle.color=never", "-f", str(HERE / "pom.xml"),
                 f"-Dmaven.repo.local={cache / 'm2'}", "dependency:build-classpath",
                 f"-Dmdep.outputFile={target / 'classpath.txt'}"],
                capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL, timeout=1800)
            if proc.returncode != 0:
                pytest.fail(f"resolving the Flink operator's jars: {classify_maven_failure(proc.stdout + proc.stderr)}"
                            f"\n{(proc.stdout + proc.stderr)[-3000:]}")
            classpath = (target / "classpath.txt").read_text().strip()
            proc = subprocess.run([str(java.home / "bin" / "javac"), "-d", str(target / "classes"), "-cp", classpath,
                                   str(HERE / "Validate.java")], capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                pytest.fail(f"compiling the validator harness:\n{proc.stderr[-3000:]}")
            (target / ".complete").write_text("ok\n")
    classpath = (target / "classpath.txt").read_text().strip()
    return [str(java.executable), "-cp", f"{target / 'classes'}:{classpath}", "Validate"]


def validate(deployments: list[dict[str, Any]], tmp_path: Path) -> list[str]:
    """The validator's verdict per FlinkDeployment: "OK" or "ERROR <message>"."""
    translated = []
    for fd in deployments:
        fd = json.loads(json.dumps(fd))
        fd["spec"]["flinkVersion"] = NEWEST_KNOWN_VERSION
        conf = fd["spec"]["flinkConfiguration"]
        for new, old in RENAMED_KEYS.items():
            if new in conf:
                conf[old] = conf.pop(new)
        translated.append(fd)
    verdicts = tmp_path / "verdicts.txt"
    proc = subprocess.run([*_validator_command(), str(verdicts)], input=json.dumps(translated), capture_output=True,
                          text=True, check=False, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return verdicts.read_text().splitlines()


def flinkdeployment(**flink: Any) -> dict[str, Any]:
    spec = {"kafka": {"bootstrapServers": "k:9092"}, "hbase": {"thrift": {"host": "hb"}}, "flink": flink}
    p = parse({"metadata": {"name": "p1", "namespace": "ns", "uid": "u", "generation": 1}, "spec": spec},
              OperatorConfig())
    return next(c for c in desired_children(p, flink_operator=True) if c["kind"] == "FlinkDeployment")


def test_the_flink_operators_validator_accepts_every_upgrade_mode_and_refuses_a_broken_one(tmp_path: Path) -> None:
    cases = [flinkdeployment(),  # the defaults (examples/pipeline.yaml): last-state on the checkpoint volume
             flinkdeployment(checkpointing={"storageUri": "s3://bucket/ckpt"}),
             flinkdeployment(upgradeMode="savepoint"),
             flinkdeployment(upgradeMode="savepoint", checkpointing={"storageUri": "s3://b/c"}, savepointsUri="s3://b/s"),
             flinkdeployment(upgradeMode="stateless")]
    broken = flinkdeployment()
    broken["spec"]["flinkConfiguration"].pop("high-availability.type", None)  # the harness really judges: no HA
    assert validate([*cases, broken], tmp_path) == ["OK"] * len(cases) + [
        "ERROR Job could not be upgraded with last-state while HA disabled"]
