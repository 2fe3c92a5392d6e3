"""The Java day logic (``dev.iotpipe.flink.DayLogic``, what the job runs) behind the Python core's interface, so the
unit tests of ``test_job_core`` run every scenario against both. It drives ``DayLogicHarness`` in a JVM over
stdin/stdout; the pure Java sources (no Flink classes) and the harness (``tests/java``, test-only) are compiled with
``javac`` once per test session."""

from __future__ import annotations

import shutil
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from iotcommon.zones import SiteZones
from stream_job import day_spec
from stream_job.core import Output
from stream_job.udf_jar import SOURCES

# the day logic: no Flink imports, so it compiles without the Flink jars; the harness is not part of the job's sources
PURE = ("DayLogic", "DaySpec", "SiteState", "PyJson", "Times")
HARNESS = Path(__file__).parent / "java" / "dev" / "iotpipe" / "flink" / "DayLogicHarness.java"
COUNTS = ("late", "overflow", "days_closed", "days_dropped", "revisions")


def compile_pure(target: Path) -> Path:
    """Compile the pure day logic into `target` (classes); returns it."""
    javac = shutil.which("javac")
    assert javac, "javac (JDK 17) is needed to test the Java day logic"
    sources = [str(SOURCES / "dev" / "iotpipe" / "flink" / f"{name}.java") for name in PURE] + [str(HARNESS)]
    proc = subprocess.run([javac, "--release", "17", "-nowarn", "-d", str(target), *sources],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"javac failed:\n{proc.stdout}{proc.stderr}"
    return target


class JavaStore:
    """A site's state inside the JVM; ``data`` has the Python core's state keys ("I", "Q", "D|<day>"), no values."""

    def __init__(self, core: JavaCore, site: str) -> None:
        self.core = core
        self.site = site

    @property
    def data(self) -> dict[str, None]:
        lines = self.core.ask("K", self.site)
        return {line[1]: None for line in lines if line[0] == "K"}


class JavaCore:
    """``stream_job.core.DayAggregator``'s methods, answered by the Java day logic."""

    def __init__(self, classes: Path, zones: SiteZones, lateness_ms: int, clock: datetime) -> None:
        java = shutil.which("java")
        assert java, "java (JDK 17) is needed to test the Java day logic"
        now_ms = (clock - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)  # exact, floor
        self.proc = subprocess.Popen(
            [java, "-XX:TieredStopAtLevel=1", "-cp", str(classes), "dev.iotpipe.flink.DayLogicHarness",
             day_spec.sensors_text(), day_spec.parts_text(), day_spec.zones_text(zones), str(lateness_ms),
             str(now_ms)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, encoding="utf-8")
        self.counts: Counter[str] = Counter()

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def ask(self, *fields: Any) -> list[list[str]]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("\t".join(str(f) for f in fields) + "\n")
        self.proc.stdin.flush()
        lines: list[list[str]] = []
        while True:
            line = self.proc.stdout.readline()
            assert line, f"the Java harness stopped (exit {self.proc.poll()})"
            if line == ".\n":
                return lines
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "C":
                for name, n in zip(COUNTS, parts[1:], strict=True):
                    if int(n):
                        self.counts[name] += int(n)
            else:
                lines.append(parts)

    @staticmethod
    def _outputs(lines: list[list[str]]) -> list[Output]:
        return [Output(p[1], p[2], p[3].encode()) for p in lines if p[0] == "O"]

    def on_reading(self, st: JavaStore, site: str, sensor: str, ts: str, ts_ms: int, value: float, seq: int,
                   clock_ms: int, sseq: int | None, watermark: int, part: int = 0) -> tuple[list[Output], list[int]]:
        lines = self.ask("R", site, sensor, ts, ts_ms, repr(value), seq, clock_ms, -1 if sseq is None else sseq,
                         watermark, part)
        return self._outputs(lines), [int(p[1]) for p in lines if p[0] == "T"]

    def on_marker(self, st: JavaStore, site: str, clock_ms: int, sseq: int, watermark: int,
                  part: int = 0) -> list[Output]:
        return self._outputs(self.ask("M", site, clock_ms, sseq, watermark, part))

    def on_timer(self, st: JavaStore, site: str, timestamp: int) -> list[Output]:
        return self._outputs(self.ask("E", site, timestamp))

    def on_idle(self, st: JavaStore, site: str) -> list[Output]:
        return self._outputs(self.ask("I", site))

    def forget(self, st: JavaStore) -> None:
        self.ask("F", st.site)
