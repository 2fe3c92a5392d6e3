"""The chaos run on a running local stack (Kafka, HBase, Thrift; `iotpipe_stack.stack.LocalStack`): starts the
pipeline processes under their own prefix, drives the plan's load, kills every component once with -9 at seeded
moments and starts it again, then waits until the stores hold what `chaos_expected` computes. Used by
bench/chaos_e2e.py (`make chaos`) and tests/test_chaos_e2e.py."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import wait
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo

import chaos_expected as ex
from chaos_plan import Kill, Plan, kill_schedule, malformed_messages
from chaos_store import Stored, end_offset, read_tables, read_topic
from chaos_ws import AggregateFollower
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from iotcommon.topics import Topics
from iotpipe_stack import probes
from iotpipe_stack.pipeline_types import PipelineProcess, StackInfo
from iotpipe_stack.ports import free_ports
from iotpipe_stack.probes import http_ready
from iotpipe_stack.stack import LocalStack

ZONE = "Europe/Athens"
LATENESS_MS = 2 * 86_400_000
WATERMARK_DELAY_MS = 1000
FINAL_MARGIN_MS = 3_600_000  # days ending in the last hour of event time are not compared (their batch may be open)
SERVICES = ("kafka", "thrift", "hbase")
WAIT_S = 900.0  # generous: the machine is shared and slow


class ChaosError(Exception):
    pass


@dataclass
class Recovery:
    component: str
    at_fraction: float
    readings_at_kill: int
    recovery_s: float  # from the restart to healthy (services, bridge, sync worker) or progressing (job, simulator)
    detail: str = ""


@dataclass
class Outcome:
    plan: Plan
    recoveries: list[Recovery] = field(default_factory=list)
    want: ex.Expected = field(default_factory=ex.Expected)
    stored: Stored = field(default_factory=Stored)
    ws_aggregates: dict[ex.AggKey, tuple[float, int]] = field(default_factory=dict)
    ws_connects: int = 0
    raw_copies: Counter[bytes] = field(default_factory=Counter)
    valid_inputs: Counter[bytes] = field(default_factory=Counter)
    readings_messages: int = 0
    unhealthy: list[str] = field(default_factory=list)
    restores: int = 0
    seconds: float = 0.0
    drain_s: float = 0.0


def _wait(check: Callable[[], bool], what: str, timeout: float = WAIT_S, every: float = 0.5) -> float:
    """Poll until check() holds; seconds waited. Raises ChaosError after `timeout`."""
    t0 = time.monotonic()
    while not check():
        if time.monotonic() - t0 > timeout:
            raise ChaosError(f"gave up waiting for {what} after {timeout:.0f} s")
        time.sleep(every)
    return time.monotonic() - t0


def _simulator_argv(args: list[str]) -> Callable[[StackInfo], list[str]]:
    return lambda s: [str(s.python), "-m", "iot_simulators", *args]


class ChaosRun:
    def __init__(self, stack: LocalStack, plan: Plan, prefix: str, log: Callable[[str], None] = print) -> None:
        self.stack = stack
        self.plan = plan
        self.prefix = prefix
        self.log = log
        self.topics = Topics(prefix)
        self.bridge_port, self.sync_port = free_ports(2)
        self.info: StackInfo = stack.info()
        self.procs = {p.name: p for p in self._processes()}
        self.sims = [f"sim-{i}" for i in range(plan.simulators)]
        self.malformed = malformed_messages(plan)
        self.sent_malformed = 0
        self._producer: Producer | None = None
        self.outcome = Outcome(plan)  # filled as the run goes (what is known when it fails)

    # ---------------------------------------------------------------- the pipeline processes
    def _processes(self) -> list[PipelineProcess]:
        common = {"IOTPIPE_TOPIC_PREFIX": self.prefix, "IOTPIPE_TABLE_PREFIX": self.prefix, "IOTPIPE_SITE_TZ": ZONE}
        sync_url = f"http://127.0.0.1:{self.sync_port}/readyz"
        bridge_url = f"http://127.0.0.1:{self.bridge_port}/readyz"
        out = [
            PipelineProcess("hbase-sync", lambda s: [str(s.python), "-m", "hbase_sync"],
                            lambda s: {**common, "IOTPIPE_SYNC_HTTP_HOST": "127.0.0.1",
                                       "IOTPIPE_SYNC_HTTP_PORT": str(self.sync_port)},
                            lambda s: http_ready(sync_url)),
            PipelineProcess("stream-job", lambda s: [str(s.flink_python), "-m", "stream_job"],
                            lambda s: {**common, "JVM_ARGS": "-Xmx768m -XX:+UseSerialGC",
                                       "IOTPIPE_STARTING_OFFSETS": "earliest",
                                       "IOTPIPE_CHECKPOINT_INTERVAL_MS": "1000"}, stop_timeout=40.0),
            PipelineProcess("ws-bridge", lambda s: [str(s.python), "-m", "ws_bridge"],
                            lambda s: {**common, "IOTPIPE_BRIDGE_HOST": "127.0.0.1",
                                       "IOTPIPE_BRIDGE_PORT": str(self.bridge_port)},
                            lambda s: http_ready(bridge_url)),
        ]
        for i in range(self.plan.simulators):
            out.append(PipelineProcess(f"sim-{i}", _simulator_argv(self.plan.simulator_args(i)),
                                       lambda s: dict(common)))
        return out

    def _start(self, name: str) -> None:
        self.stack.start_pipeline([self.procs[name]], timeout=WAIT_S)

    def _sim_done(self, name: str) -> bool:
        log = self.stack.files(name).log_file.read_text(errors="replace")
        last_run = log.rsplit("===== iotpipe: starting", 1)[-1]
        # the simulator's own final line (librdkafka's connection errors during a broker outage also say "failed:")
        if " iot_simulators: failed: " in last_run or " iot_simulators: giving up: " in last_run:
            raise ChaosError(f"{name} failed:\n{last_run[-2000:]}")
        return self.stack.running_pid(name) is None and " iot_simulators: done: " in last_run

    def _checkpoints(self) -> set[Path]:
        root = self.info.home / "stream_job" / "checkpoints" / self.prefix
        return {p.parent for p in root.glob("*/chk-*/_metadata")}

    def _readings(self) -> int:
        try:
            return end_offset(self.info.bootstrap, self.topics.readings)
        except Exception:  # the broker is away (killed): no progress to report
            return -1

    # ---------------------------------------------------------------- malformed input
    def _inject(self, upto: int) -> None:
        """Produce the malformed messages due once the readings topic holds `upto` messages."""
        due = min(len(self.malformed), upto * len(self.malformed) // max(1, self.plan.planned_readings))
        if due <= self.sent_malformed:
            return
        if self._producer is None:
            self._producer = Producer({"bootstrap.servers": self.info.bootstrap, "enable.idempotence": True,
                                       "delivery.timeout.ms": 600_000})
        for value in self.malformed[self.sent_malformed:due]:
            self._producer.produce(self.topics.readings, value=value)
        self.sent_malformed = due
        self._producer.poll(0)

    # ---------------------------------------------------------------- kills
    def _kill_and_recover(self, kill: Kill) -> Recovery:
        name = self.sims[0] if kill.component == "simulator" else kill.component
        readings = self._readings()
        before = self._checkpoints()
        if not self.stack.kill(name):
            raise ChaosError(f"{name} was not running when its kill came")
        t0 = time.monotonic()
        detail = ""
        if name in SERVICES:
            self.stack.restart_service(name, timeout=WAIT_S)
            if name == "hbase":  # the Thrift server must reach the new master again
                _wait(lambda: probes.thrift_ready(self.info.thrift_host, self.info.thrift_port), "Thrift after HBase")
                _wait(self._tables_readable, "the tables through Thrift after HBase")
        else:
            self._start(name)
            if name == "stream-job":
                _wait(lambda: bool(self._checkpoints() - before), "a checkpoint of the restored job")
                detail = "restored" if "restoring from" in self.stack.files(name).log_file.read_text(
                    errors="replace").rsplit("===== iotpipe: starting", 1)[-1] else "NOT restored"
            elif kill.component == "simulator":
                mark = self._readings()
                _wait(lambda: self._readings() > mark, "the restarted simulator's first readings")
        return Recovery(kill.component, kill.at_fraction, readings, time.monotonic() - t0, detail)

    def _tables_readable(self) -> bool:
        try:
            read_tables(self.info.thrift_host, self.info.thrift_port, self.prefix).raw.total()
            return True
        except Exception:  # TTransportException / IOError while regions are assigned
            return False

    def _dead(self) -> list[str]:
        """Components that should run and do not (a simulator may have finished)."""
        return [n for n in (*SERVICES, "hbase-sync", "stream-job", "ws-bridge") if self.stack.running_pid(n) is None]

    # ---------------------------------------------------------------- the run
    def create_topics(self) -> None:
        t = self.topics
        new = [NewTopic(name, 1, 1) for name in (t.readings, t.raw, t.aggregates, t.late, t.deadletter)]
        with AdminClient({"bootstrap.servers": self.info.bootstrap}) as admin:
            futures = admin.create_topics(new, request_timeout=60)
            wait(futures.values())  # every request answered before the block destroys the client
            for future in futures.values():
                future.result()

    def run(self) -> Outcome:
        out = self.outcome
        t_start = time.monotonic()
        self.create_topics()
        for name in ("stream-job", "hbase-sync", "ws-bridge"):  # the slowest to start first
            self._start(name)
        sites = [f"site-{i:05d}" for i in range(1, self.plan.sites + 1)]
        follower = AggregateFollower(f"ws://127.0.0.1:{self.bridge_port}/ws", sites, history_per_series=400)
        follower.start()
        try:
            _wait(lambda: bool(self._checkpoints()), "the stream job's first checkpoint")
            for sim in self.sims:
                self._start(sim)
            for kill in kill_schedule(self.plan):
                target = int(kill.at_fraction * self.plan.planned_readings)
                _wait(self._reached(target), f"{kill.at_fraction:.0%} of the load")
                t_kill = time.monotonic()
                try:
                    rec = self._kill_and_recover(kill)
                except ChaosError as e:
                    out.recoveries.append(Recovery(kill.component, kill.at_fraction, -1,
                                                   time.monotonic() - t_kill, f"NOT back: {e}"))
                    raise
                self.log(f"killed {rec.component} at {rec.readings_at_kill} readings: back after "
                         f"{rec.recovery_s:.1f} s {rec.detail}")
                out.recoveries.append(rec)
                dead = self._dead()
                if dead:
                    out.unhealthy.append(f"after the {kill.component} kill: {', '.join(dead)} died")
                    for name in dead:
                        if name in SERVICES:
                            self.stack.restart_service(name, timeout=WAIT_S)
                        else:
                            self._start(name)
            _wait(lambda: self._progress() >= 0 and self._all_sims_done(), "the simulators to finish")
            self._inject(10 * self.plan.planned_readings)
            assert self._producer is not None
            if self._producer.flush(120) != 0:
                raise ChaosError("malformed messages still unacknowledged")
            t_drain = time.monotonic()
            inputs = read_topic(self.info.bootstrap, self.topics.readings, committed=False)
            out.readings_messages = len(inputs)
            out.want = ex.expected(inputs, ZoneInfo(ZONE), LATENESS_MS, WATERMARK_DELAY_MS + FINAL_MARGIN_MS)
            out.valid_inputs = Counter(v or b"" for _, v in inputs if ex.parse_reading(v) is not None)
            self.log(f"input: {len(inputs)} messages ({out.want.valid_messages} valid, "
                     f"{len(out.want.deadletters)} malformed); expected {len(out.want.raw)} raw rows, "
                     f"{len(out.want.late)} late, {len(out.want.aggregates)} final aggregates")
            try:
                _wait(lambda: self._stored_matches(out), "the stores to hold the expected rows", every=3.0)
                _wait(lambda: self._ws_matches(follower, out), "the websocket client's aggregates", timeout=120)
            except ChaosError as e:
                self.log(str(e))
            out.drain_s = time.monotonic() - t_drain
            out.raw_copies = Counter(v or b"" for _, v in read_topic(self.info.bootstrap, self.topics.raw))
            out.ws_aggregates = self._final_days(follower.aggregates(), out)
            out.ws_connects = follower.connects
            out.unhealthy += self._final_health()
            out.restores = len(self.stack.files("stream-job").log_file.read_text(errors="replace")
                               .split("restoring from")) - 1
        finally:
            follower.stop()
            self.stop()
            out.seconds = time.monotonic() - t_start
        return out

    def _reached(self, target: int) -> Callable[[], bool]:
        return lambda: self._progress() >= target or self._all_sims_done()

    def _progress(self) -> int:
        n = self._readings()
        if n >= 0:
            self._inject(n)
        return n

    def _all_sims_done(self) -> bool:
        return all(self._sim_done(s) for s in self.sims)

    def _final_days(self, aggs: dict[ex.AggKey, tuple[float, int]], out: Outcome) -> dict[ex.AggKey, tuple[float, int]]:
        """Only the days the expectation calls final (the newest day may still be open)."""
        zone = ZoneInfo(ZONE)
        from datetime import date

        return {k: v for k, v in aggs.items()
                if ex.end_ms(date.fromisoformat(k[2]), zone) <= out.want.final_until_ms}

    def _stored_matches(self, out: Outcome) -> bool:
        try:
            stored = read_tables(self.info.thrift_host, self.info.thrift_port, self.prefix)
        except Exception:  # Thrift away for a moment
            return False
        stored.aggregates = self._final_days(stored.aggregates, out)
        out.stored = stored
        w = out.want
        return (set(stored.raw) == w.raw and stored.late == w.late and stored.deadletters == w.deadletters
                and not ex.aggregate_differences(stored.aggregates, w.aggregates))

    def _ws_matches(self, follower: AggregateFollower, out: Outcome) -> bool:
        return not ex.aggregate_differences(self._final_days(follower.aggregates(), out), out.want.aggregates)

    def _final_health(self) -> list[str]:
        bad = [f"{n} not ready" for n in SERVICES if not self.stack.probe(n)]
        if not http_ready(f"http://127.0.0.1:{self.sync_port}/readyz"):
            bad.append("hbase-sync not ready")
        if not http_ready(f"http://127.0.0.1:{self.bridge_port}/readyz"):
            bad.append("ws-bridge not ready")
        before = self._checkpoints()
        with contextlib.suppress(ChaosError):
            _wait(lambda: bool(self._checkpoints() - before) or self.stack.running_pid("stream-job") is None,
                  "a new checkpoint", timeout=120)
        if self.stack.running_pid("stream-job") is None or not self._checkpoints() - before:
            bad.append("stream-job not checkpointing")
        return bad

    def stop(self) -> None:
        """Stop the pipeline processes of this run (the stack's services stay), each with its declared stop timeout,
        and close the producer of the malformed messages (a client left open outlives the run: the test session's
        KafkaClientLeak check found it three modules later)."""
        for name in [*self.sims, "ws-bridge", "stream-job", "hbase-sync"]:
            self.stack.stop_service(name)
        if self._producer is not None:
            self._producer.flush(30)
            self._producer.close()
            self._producer = None
