"""Helpers for the stream job's real-service tests: run the job as a subprocess (PyFlink venv), produce and read topics.

Exposed through the ``job_kit`` fixture (test modules cannot import each other under --import-mode=importlib).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from iotcommon.topics import Topics

_HERE = str(Path(__file__).parent)
if _HERE not in sys.path:  # the test modules' shared helpers (java_core, job_aggregates)
    sys.path.insert(0, _HERE)


@dataclass
class Message:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int


class JobProcess:
    """`python -m stream_job` in its own process group (the PyFlink gateway JVM and Python workers are children)."""

    def __init__(self, python: Path, env: dict[str, str], log: Path, args: Sequence[str] = ()) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen([str(python), "-m", "stream_job", *args], env=env, stdout=self._out,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL the whole process group: a crash, no chance to clean up."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self._reap_group()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM (graceful stop); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout=30)
        self._reap_group()
        return code

    def _reap_group(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)  # leftovers (JVM, Beam workers) of the group
        self._out.close()

    def log_tail(self, lines: int = 60) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(line for line in text if not line.lstrip().startswith("at "))[-8000:] if text else ""


class JobKit:
    def __init__(self, bootstrap: str, python: Path, jar: Path, env: dict[str, str], tmp: Path) -> None:
        self.bootstrap = bootstrap
        self.python = python
        self.jar = jar
        self.env = env
        self.tmp = tmp
        self.jobs: list[JobProcess] = []

    # -- topics ------------------------------------------------------------------------------------------------

    def create_topics(self, prefix: str, readings_partitions: int = 2) -> Topics:
        topics = Topics(prefix)
        new = [NewTopic(topics.readings, readings_partitions, 1)]
        new += [NewTopic(t, 1, 1) for t in (topics.raw, topics.aggregates, topics.late, topics.deadletter)]
        with AdminClient({"bootstrap.servers": self.bootstrap}) as admin:
            futures = admin.create_topics(new, request_timeout=30)
            wait(futures.values())  # every request answered before the block destroys the client
            for future in futures.values():
                future.result()
        return topics

    def produce(self, topic: str, messages: Sequence[tuple[bytes | None, bytes | None]]) -> list[Message]:
        """Produce in order (idempotent producer: no retries can duplicate); returns where each one landed."""
        producer = Producer({"bootstrap.servers": self.bootstrap, "enable.idempotence": True, "linger.ms": 5})
        landed: list[Message | None] = [None] * len(messages)

        def report(i: int) -> Callable[[Any, Any], None]:
            def done(err: Any, msg: Any) -> None:
                assert err is None, err
                landed[i] = Message(msg.key(), msg.value(), msg.partition(), msg.offset())

            return done

        for i, (key, value) in enumerate(messages):
            while True:
                try:
                    producer.produce(topic, value=value, key=key, on_delivery=report(i))
                    break
                except BufferError:
                    producer.poll(0.1)
            producer.poll(0)
        assert producer.flush(60) == 0
        assert all(m is not None for m in landed)
        return [m for m in landed if m is not None]

    def read_all(self, topic: str, idle: float = 2.0) -> list[Message]:
        """Every committed message of a topic (read_committed), from the start; stops after `idle` s without data."""
        consumer = Consumer({"bootstrap.servers": self.bootstrap, "group.id": f"t-{time.monotonic_ns()}",
                             "isolation.level": "read_committed", "enable.auto.commit": False,
                             "auto.offset.reset": "earliest"})
        try:
            meta = consumer.list_topics(topic, timeout=10).topics[topic]
            consumer.assign([TopicPartition(topic, p, 0) for p in meta.partitions])
            out: list[Message] = []
            last = time.monotonic()
            while time.monotonic() - last < idle:
                msg = consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise AssertionError(msg.error())
                out.append(Message(msg.key(), msg.value(), msg.partition(), msg.offset()))
                last = time.monotonic()
            return out
        finally:
            consumer.close()

    def wait_until(self, check: Callable[[], bool], job: JobProcess, timeout: float, what: str,
                   explain: Callable[[], str] = lambda: "") -> None:
        """Poll until check() holds; fail with the job's log if it exits or the (generous) deadline passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if job.proc.poll() is not None:
                pytest.fail(f"the job exited ({job.proc.returncode}) while waiting for {what}:\n{job.log_tail()}")
            time.sleep(2)
        pytest.fail(f"gave up waiting for {what} after {timeout:.0f} s: {explain()}\n{job.log_tail()}")

    # -- the job -----------------------------------------------------------------------------------------------

    def start_job(self, prefix: str, name: str, **settings: str) -> JobProcess:
        env = {**self.env,
               "IOTPIPE_KAFKA_BOOTSTRAP": self.bootstrap,
               "IOTPIPE_TOPIC_PREFIX": prefix,
               "IOTPIPE_FLINK_CONNECTOR_JAR": str(self.jar),
               "IOTPIPE_HOME": str(self.tmp / "home"),
               "IOTPIPE_STARTING_OFFSETS": "earliest",
               "IOTPIPE_CHECKPOINT_INTERVAL_MS": "1000",
               "IOTPIPE_METRICS_PORT": "0",  # no Prometheus endpoint unless a test asks (jobs run side by side)
               "IOTPIPE_SITE_TZ": "Europe/Athens"}
        env.update({f"IOTPIPE_{k.upper()}": v for k, v in settings.items()})
        job = JobProcess(self.python, env, self.tmp / f"{name}.log")
        self.jobs.append(job)
        return job

    def close(self) -> None:
        for job in self.jobs:
            if job.proc.poll() is None:
                job.kill()


@pytest.fixture
def job_kit(kafka_service: Any, flink_runtime: Any, tmp_path: Path) -> Iterator[JobKit]:
    kit = JobKit(kafka_service.bootstrap, flink_runtime.python, flink_runtime.connector_jar, dict(flink_runtime.env),
                 tmp_path)
    try:
        yield kit
    finally:
        kit.close()


@pytest.fixture(scope="module")
def module_job_kit(kafka_service: Any, flink_runtime: Any,
                   tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobKit]:
    """A JobKit shared by the tests of one module (several tests check the results of the same job runs)."""
    kit = JobKit(kafka_service.bootstrap, flink_runtime.python, flink_runtime.connector_jar, dict(flink_runtime.env),
                 tmp_path_factory.mktemp("jobs"))
    try:
        yield kit
    finally:
        kit.close()
