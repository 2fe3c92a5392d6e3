"""Helpers of the end-to-end test on the local Kubernetes cluster (tests/test_e2e_kube.py): helm, kubectl waits,
port-forwards, and reading the pipeline's HBase tables through a forwarded Thrift port. Imported by path (tests/ is
not a package), like dashboard_kit.

Pure parts (row-key parsing, the seq check) are plain functions; everything else is a thin edge over kubectl, helm
and happybase.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import happybase

from iotcommon.errors import StackError

REPO = Path(__file__).resolve().parents[1]
T = TypeVar("T")


# --- progress ------------------------------------------------------------------------------------


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def uncaptured(config: Any) -> Callable[[str], None]:
    """A writer that suspends pytest's output capture for each line, so progress shows while the test runs."""
    capman = config.pluginmanager.getplugin("capturemanager")

    def write(line: str) -> None:
        with capman.global_and_fixture_disabled():
            _stderr(line)

    return write


@dataclass
class Clock:
    """Timed progress lines (``out``: stderr, or ``uncaptured(config)`` under pytest) and the phase figures."""

    out: Callable[[str], None] = _stderr
    start: float = field(default_factory=time.monotonic)
    phases: dict[str, float] = field(default_factory=dict)

    def say(self, msg: str) -> None:
        self.out(f"[e2e-kube {time.strftime('%H:%M:%S')} +{time.monotonic() - self.start:6.1f}s] {msg}")

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        began = time.monotonic()
        self.say(f"{name} ...")
        yield
        self.phases[name] = round(time.monotonic() - began, 1)
        self.say(f"{name}: {self.phases[name]} s")


def ready(value: object) -> bool:
    """What ``wait_for`` takes as an answer: not None, not False, and not an empty collection (a probe such as
    ``(r := rows()) and check(r) and r`` returns the empty dict itself while there are no rows yet)."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (dict, list, set, frozenset, tuple, str, bytes)) and not value)


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 3.0) -> T:
    """Poll ``probe`` until its value is ``ready``; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except (subprocess.CalledProcessError, StackError, OSError) as exc:
            value, last = None, exc  # a port-forward or kubectl hiccup under load
        if value is not None and ready(value):
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last})")
        time.sleep(interval)


# --- helm ----------------------------------------------------------------------------------------


def helm_binary() -> Path:
    """The cached helm (stack/kube/build-helm.sh builds it from the Go module proxy once; prints its path)."""
    proc = subprocess.run(["bash", str(REPO / "stack" / "kube" / "build-helm.sh")], capture_output=True, text=True,
                          check=False, stdin=subprocess.DEVNULL, timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        raise AssertionError(f"building helm failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return Path(proc.stdout.strip().splitlines()[-1])


def helm(binary: Path, kubeconfig: str, home: Path, *args: str) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(home), "KUBECONFIG": kubeconfig, "HELM_CACHE_HOME": str(home / "c"),
           "HELM_CONFIG_HOME": str(home / "g"), "HELM_DATA_HOME": str(home / "d")}  # fmt: skip
    proc = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, cwd=REPO, check=False,
                          stdin=subprocess.DEVNULL, timeout=600)  # fmt: skip
    assert proc.returncode == 0, f"helm {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


# --- kubectl -------------------------------------------------------------------------------------


Kubectl = Callable[..., "subprocess.CompletedProcess[str]"]


def get_json(kubectl: Kubectl, *args: str) -> Any:
    return json.loads(kubectl("get", *args, "-o", "json").stdout)


def pods(kubectl: Kubectl, namespace: str, selector: str = "") -> list[dict[str, Any]]:
    args = ["pods", "-n", namespace, *(["-l", selector] if selector else [])]
    items: list[dict[str, Any]] = get_json(kubectl, *args)["items"]
    return items


def running(pod: dict[str, Any]) -> bool:
    statuses = pod.get("status", {}).get("containerStatuses") or []
    return pod["status"].get("phase") == "Running" and bool(statuses) and all(s.get("ready") for s in statuses)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for c in obj.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return dict(c)
    return {}


@contextlib.contextmanager
def port_forward(kubectl_argv: list[str], namespace: str, target: str, port: int) -> Iterator[int]:
    """`kubectl port-forward <target> :<port>` (through the API server and the kubelet); yields the local port."""
    argv = [*kubectl_argv, "port-forward", "-n", namespace, target, f":{port}"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert found, f"kubectl port-forward {target} did not start: {line}{proc.stdout.read() if proc.poll() else ''}"
        yield int(found.group(1))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- HBase through a forwarded Thrift port --------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A reading's row key ``<salt>|<site>|<series>|<ts_ms>|<seq>`` (iotcommon.hbase_layout.reading_key)."""

    site: str
    series: str
    ts_ms: int
    seq: int


def parse_reading_key(key: bytes) -> Row:
    _salt, site, series, ts_ms, seq = key.decode().split("|")
    return Row(site, series, int(ts_ms), int(seq))


def seq_problems(rows: Iterable[Row], series: Iterable[str]) -> list[str]:
    """What is wrong with the readings of the given series: each device's readings carry seq 0, 1, 2, ... in event
    time order (the simulator), so the rows of one device must hold every seq from 0 to its highest exactly once."""
    wanted = set(series)
    by_device: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        if row.series in wanted:
            by_device[(row.site, row.series)].append(row)
    problems = []
    for (site, name), found in sorted(by_device.items()):
        seqs = sorted(r.seq for r in found)
        missing = sorted(set(range(seqs[-1] + 1)) - set(seqs))
        doubled = len(seqs) - len(set(seqs))
        if missing or doubled:
            problems.append(f"{site}/{name}: {len(missing)} missing (first {missing[:5]}), {doubled} doubled")
    return problems


@contextlib.contextmanager
def hbase(kubectl_argv: list[str], namespace: str, service: str, port: int) -> Iterator[happybase.Connection]:
    with port_forward(kubectl_argv, namespace, f"svc/{service}", port) as local:
        conn = happybase.Connection("127.0.0.1", local, timeout=120_000, autoconnect=False)
        wait_for("the forwarded Thrift port", lambda: _open(conn), 120)
        try:
            yield conn
        finally:
            conn.close()


def _open(conn: happybase.Connection) -> bool:
    try:
        conn.open()
        conn.tables()
    except Exception:  # the forward is not serving yet: any transport error means "try again"
        conn.close()
        return False
    return True


def reading_rows(conn: happybase.Connection, table: str) -> list[Row]:
    if table.encode() not in conn.tables():
        return []
    return [parse_reading_key(key) for key, _ in conn.table(table).scan(filter=b"KeyOnlyFilter()", batch_size=5000)]


def aggregates(conn: happybase.Connection, table: str) -> dict[bytes, dict[str, Any]]:
    """Aggregates row key -> the aggregate message it holds (iotcommon.messages.Aggregate as a dict)."""
    return {key: json.loads(data[b"d:m"]) for key, data in conn.table(table).scan(columns=[b"d:m"], batch_size=2000)}


def iso_ms(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp() * 1000)


STEP_MS = 15 * 60 * 1000  # the simulator's step: one reading per 15-minute sensor and step


def days_spanning(
    found: dict[bytes, dict[str, Any]], name: str, edge_ms: dict[str, int], first_ms: dict[str, int]
) -> list[dict[str, Any]]:
    """The ``name`` day aggregates (e.g. AggDay[TH1]) of each site whose day holds that site's ``edge_ms`` (interval
    end rule: start < t <= end) and is not the site's first day (which may be partial)."""
    out = []
    for msg in found.values():
        site, start, end = msg["site"], iso_ms(msg["window_start"]), iso_ms(msg["window_end"])
        if msg["name"] != name or site not in edge_ms:
            continue
        if start < edge_ms[site] <= end and start >= first_ms[site] - STEP_MS:
            out.append(msg)
    return out


# --- artifacts on failure -------------------------------------------------------------------------------------------


def save_artifacts(kubectl: Kubectl, namespace: str, dest: Path, say: Callable[[str], None]) -> None:
    """What a failed run needs to be understood, under ``dest``: objects, events, the pipelines' status and every
    pod's logs (the previous container's too after a restart). Best effort: a kubectl that fails writes its error."""
    dest.mkdir(parents=True, exist_ok=True)

    def save(name: str, *args: str) -> None:
        try:
            proc = kubectl(*args, check=False, timeout=120)
            text = proc.stdout + (f"\n[stderr]\n{proc.stderr}" if proc.stderr else "")
        except (subprocess.SubprocessError, OSError) as exc:
            text = f"kubectl {' '.join(args)} failed: {exc}"
        (dest / name).write_text(text)

    save("objects.txt", "get", "all,iotpipelines,pvc,pv,secrets,configmaps", "-n", namespace, "-o", "wide")
    save("events.txt", "get", "events", "-n", namespace, "--sort-by=.lastTimestamp")
    save("iotpipelines.yaml", "get", "iotpipelines", "-n", namespace, "-o", "yaml")
    save("pods.yaml", "get", "pods", "-n", namespace, "-o", "yaml")
    try:
        found = pods(kubectl, namespace)
    except (subprocess.SubprocessError, OSError, ValueError, StackError):
        found = []
    for pod in found:
        name = pod["metadata"]["name"]
        save(f"logs-{name}.txt", "logs", "-n", namespace, name, "--all-containers", "--tail=2000", "--timestamps")
        if any(c.get("restartCount") for c in pod.get("status", {}).get("containerStatuses") or []):
            save(f"logs-{name}-previous.txt", "logs", "-n", namespace, name, "--all-containers", "--previous",
                 "--tail=500")  # fmt: skip
    say(f"artifacts of the failure in {dest}")
    for line in failure_digest(found, dest):
        say(line)


# lines of a pod log that say why a job or service is not making progress
_TROUBLE = re.compile(r"Exception|Error|ERROR|FAILED|failed|Caused by|cannot|restart", re.ASCII)


def failure_digest(found: list[dict[str, Any]], dest: Path, per_pod: int = 12) -> list[str]:
    """A few lines that CI's output keeps when the artifacts themselves are out of reach: every pod's phase and
    restarts, and the last troubled lines of each Flink pod's log (from the logs just saved under ``dest``)."""
    out = []
    for pod in found:
        name = pod["metadata"]["name"]
        statuses = pod.get("status", {}).get("containerStatuses") or []
        restarts = sum(int(c.get("restartCount") or 0) for c in statuses)
        out.append(f"pod {name}: {pod.get('status', {}).get('phase')}, {restarts} restarts")
        if "flink" not in name:
            continue
        for log in (dest / f"logs-{name}.txt", dest / f"logs-{name}-previous.txt"):
            if not log.is_file():
                continue
            troubled = [line[:300] for line in log.read_text(errors="replace").splitlines() if _TROUBLE.search(line)]
            out += [f"  {log.name}: {line}" for line in troubled[-per_pod:]]
    return out
