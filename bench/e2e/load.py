"""The open-loop producer (its own process, so it never competes with the observers for the GIL) and the raw Kafka
produce+consume baseline. Producer settings are the simulator's (iot_simulators.producer.producer_config), and so
are its encoding and its keys (``PlanEncoder``): the producer stands in for the simulators, so it costs per reading
about what they cost, not what building a ``Reading`` and a datetime in Python costs."""

from __future__ import annotations

import concurrent.futures
import json
import math
import multiprocessing as mp
import time
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import backpressure
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from e2e.schedule import SENSOR_NAMES, STEP_MS, Plan, site_name, value_of
from iot_simulators.config import SimConfig
from iot_simulators.encoding import Encoder
from iot_simulators.producer import producer_config
from iotcommon.sensors import SENSORS

TICK_S = 0.005
# Sleep at least this long between sends: what fell due meanwhile goes out together. Sleeping until the very next
# due time (0.1 ms at 10,000/s) made a loop turn (clock, plan, poll, sleep syscall) per reading: ~20 us of CPU each.
MIN_SLEEP_S = 0.001


def kafka_settings(bootstrap: str) -> dict[str, Any]:
    return producer_config(replace(SimConfig(), bootstrap=bootstrap))


class PlanEncoder:
    """Reading i of the plan as Kafka (value, key) the way the simulator sends it (iot_simulators.encoding): the key
    is the site (the stream job's producer contract: one partition per site, in order), and the parts of a message
    that are constant per device are built once (the simulator's ``Encoder`` prefixes), so per reading only the
    event time (once per step of 15 minutes) and seq are formatted. The bytes are exactly those of
    ``Reading(site, sensor, ts, value_of(sensor), unit, seq).encode()`` (tests/test_bench_e2e_pure.py): the plan's
    values are one constant per sensor, written as ``json`` writes a float (21.5, not the simulator's 21.500)."""

    def __init__(self, plan: Plan) -> None:
        sites = [site_name(n) for n in range(plan.sites)]
        encoder = Encoder(sites)
        self._devices = plan.devices
        self._base_ms = plan.base_ms
        self._heads = [encoder.prefixes[sensor][n] for n in range(plan.sites) for sensor in SENSOR_NAMES]
        self._keys = [encoder.keys[n] for n in range(plan.sites) for _ in SENSOR_NAMES]
        self._middles = [b'","value":%s,"unit":%s,"seq":' % (json.dumps(value_of(sensor)).encode(),
                                                               json.dumps(SENSORS[sensor].unit).encode())
                         for _ in range(plan.sites) for sensor in SENSOR_NAMES]
        self._seq = -1
        self._ts = b""

    def __call__(self, i: int) -> tuple[bytes, bytes]:
        seq, device = divmod(i, self._devices)
        if seq != self._seq:  # a new 15-minute step: readings come in index order, so this is once per step
            ts_ms = self._base_ms + seq * STEP_MS
            self._ts = datetime.fromtimestamp(ts_ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ").encode()
            self._seq = seq
        return b"%s%s%s%d}" % (self._heads[device], self._ts, self._middles[device], seq), self._keys[device]


@dataclass(frozen=True)
class Sent:
    per_step: tuple[int, ...]  # readings sent in each step
    behind_max_s: tuple[float, ...]  # most the producer lagged behind the plan in each step


def _run(bootstrap: str, topic: str, plan: Plan, start_wall: float, stop: Any, out: Any) -> None:
    producer = Producer(kafka_settings(bootstrap))
    encode = PlanEncoder(plan)
    per_step, behind = [], []
    i = 0
    for step in plan.steps:
        worst = 0.0
        while i < step.end_index and not stop.is_set():
            elapsed = time.time() - start_wall
            due = min(step.end_index, step.start_index + math.floor((elapsed - step.start_s) * step.rate) + 1)
            if i < due:
                worst = max(worst, elapsed - plan.due_s(i))
            while i < due:
                value, key = encode(i)
                backpressure.produce(producer, topic, value, key)
                i += 1
            producer.poll(0)
            wait = start_wall + plan.due_s(i) - time.time() if i < step.end_index else 0.0
            if wait > 0:
                time.sleep(min(max(wait, MIN_SLEEP_S), TICK_S * 4))
        per_step.append(i - step.start_index)
        behind.append(worst)
    backpressure.flush(producer, "the paced producer")
    out.put(Sent(tuple(per_step), tuple(behind)))


class PacedProducer:
    """Runs the plan in a child process from ``start_wall`` (a ``time.time()``); ``result()`` waits for it."""

    def __init__(self, bootstrap: str, topic: str, plan: Plan, start_wall: float) -> None:
        ctx = mp.get_context("spawn")
        self._stop = ctx.Event()
        self._out: Any = ctx.Queue()
        self.process = ctx.Process(target=_run, args=(bootstrap, topic, plan, start_wall, self._stop, self._out),
                                   name="paced-producer", daemon=True)
        self.process.start()

    def result(self, timeout: float) -> Sent:
        sent: Sent = self._out.get(timeout=timeout)
        self.process.join(30)
        return sent

    def stop(self) -> None:
        self._stop.set()
        self.process.join(30)
        if self.process.is_alive():
            self.process.kill()


BASELINE_PARTITIONS = 2  # as iotpipe.readings in the bench


def raw_baseline(bootstrap: str, plan: Plan, count: int) -> dict[str, float]:
    """Plain confluent-kafka: produce ``count`` readings of the plan (same size, same settings) to a new topic as fast
    as the broker takes them, then consume them back. Rate = count / (produce + consume seconds)."""
    topic = f"bench-e2e-baseline-{uuid.uuid4().hex[:8]}"
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:
        admin.create_topics([NewTopic(topic, num_partitions=BASELINE_PARTITIONS, replication_factor=1)],
                            request_timeout=60)[topic].result()
    encode = PlanEncoder(plan)
    messages = [encode(i) for i in range(count)]
    producer = Producer(kafka_settings(bootstrap))
    backpressure.produce(producer, topic, messages[0][0], messages[0][1])  # connection and producer id: not timed
    backpressure.flush(producer, "the baseline producer")
    t0 = time.monotonic()
    for value, key in messages[1:]:
        backpressure.produce(producer, topic, value, key)
    backpressure.flush(producer, "the baseline producer")
    produce_s = time.monotonic() - t0
    # assigned, not subscribed: no group join in the timed consume (on a broker that has just started, a join can
    # also wait for its group coordinator to load)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": topic, "enable.auto.commit": False})
    got, t1 = 0, time.monotonic()
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in range(BASELINE_PARTITIONS)])
    deadline = t1 + 300
    while got < count and time.monotonic() < deadline:
        got += sum(1 for m in consumer.consume(10_000, 1.0) if m.error() is None)
    consume_s = time.monotonic() - t1
    consumer.close()
    with AdminClient({"bootstrap.servers": bootstrap}) as admin:  # its outcome never mattered, only its answer
        concurrent.futures.wait(admin.delete_topics([topic]).values())  # before the block destroys the client
    if got < count:
        raise SystemExit(f"baseline: consumed {got} of {count} readings")
    return {"readings": count, "produce_s": produce_s, "consume_s": consume_s,
            "rate": count / (produce_s + consume_s)}


def median_baseline(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """The round with the median rate (the upper one of an even count), with every round's rate as ``rounds``."""
    ordered = sorted(rounds, key=lambda r: r["rate"])
    return {**ordered[len(ordered) // 2], "rounds": [r["rate"] for r in rounds]}


def raw_baselines(bootstrap: str, plan: Plan, count: int, rounds: int) -> dict[str, Any]:
    """`rounds` timed baselines after an untimed one (a broker that has just started serves its first reads with cold
    JIT and page cache: single rounds ranged from 90,000 to 174,000 readings/s), and the median of them."""
    raw_baseline(bootstrap, plan, min(count, 100_000))
    return median_baseline([raw_baseline(bootstrap, plan, count) for _ in range(rounds)])


def higher_baseline(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The baseline the ratio uses: the higher of the medians taken before the load (a broker that has just started,
    its JIT still compiling) and after it (a warm broker, every other process stopped). The higher one is the
    stricter ratio; both stay in the result (``before``, ``after``)."""
    chosen = after if after["rate"] > before["rate"] else before
    return {**chosen, "before": before, "after": after}

