"""The Kafka edge: an idempotent, compressed, batching confluent-kafka producer that counts what it could not deliver.

Only failed deliveries are reported back (``delivery.report.only.error``), so a healthy run pays nothing per message
for delivery reports. librdkafka retries every message until ``delivery_timeout_s``; a message that still fails is
counted, and the runner stops with a non-zero exit. Idempotence keeps retries after a broker restart free of
duplicates and in order.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from iot_simulators.config import SimConfig
from iotcommon.errors import ServiceUnavailable

log = logging.getLogger("iot_simulators.kafka")


def producer_config(cfg: SimConfig) -> dict[str, Any]:
    """librdkafka settings of the simulator (also used by the benchmark's raw baseline)."""
    return {
        "bootstrap.servers": cfg.bootstrap,
        "client.id": f"iot-simulator-{socket.gethostname()}",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": cfg.compression,
        "linger.ms": cfg.linger_ms,
        "batch.size": cfg.batch_bytes,
        "message.timeout.ms": int(cfg.delivery_timeout_s * 1000),
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
        "delivery.report.only.error": True,
    }


class KafkaSink:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.failed = 0
        self.first_error: KafkaError | None = None
        self.fatal: KafkaError | None = None
        self._last_warning = 0.0
        conf = producer_config(cfg)
        conf["on_delivery"] = self._on_delivery
        conf["error_cb"] = self._on_error
        conf["logger"] = logging.getLogger("iot_simulators.librdkafka")
        self.producer = Producer(conf)
        self.produce = self.producer.produce

    # -- callbacks (run inside poll/flush) ----------------------------------------------------------------------------

    def _on_delivery(self, err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            self.failed += 1
            if self.first_error is None:
                self.first_error = err

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self.fatal = err
            log.error("fatal Kafka producer error: %s", err)
            return
        now = time.monotonic()
        if now - self._last_warning >= 5.0:  # a broker outage reports the same error many times per second
            self._last_warning = now
            log.warning("Kafka: %s (retrying; readings are kept and resent for up to %.0f s)", err.str(),
                        self.cfg.delivery_timeout_s)

    # -- operations ----------------------------------------------------------------------------------------------

    def connect(self, topic: str, stop: threading.Event | None = None) -> int:
        """Wait (bounded, with visible retries) until the cluster answers; create the topic if asked.

        Returns the topic's partition count (0 if ``stop`` was set while waiting). Raises ServiceUnavailable after
        ``connect_timeout_s``.
        """
        stop = stop or threading.Event()
        deadline = time.monotonic() + self.cfg.connect_timeout_s
        attempt = 0
        while True:
            attempt += 1
            left = deadline - time.monotonic()
            try:
                meta = self.producer.list_topics(timeout=max(0.5, min(3.0, left)))
                break
            except KafkaException as exc:
                left = deadline - time.monotonic()
                if left <= 0:
                    msg = (f"Kafka at {self.cfg.bootstrap} is not reachable after {self.cfg.connect_timeout_s:.0f} s "
                           f"({attempt} attempts): {exc.args[0] if exc.args else exc}")
                    raise ServiceUnavailable(msg) from exc
                log.warning("waiting for Kafka at %s (attempt %d, %.0f s left): %s", self.cfg.bootstrap, attempt, left,
                            exc.args[0] if exc.args else exc)
                if stop.wait(min(1.0, max(left, 0))):
                    return 0
        found = meta.topics.get(topic)
        if found is not None and found.error is None:
            return len(found.partitions)
        if not self.cfg.create_topic:
            msg = f"topic {topic} does not exist on {self.cfg.bootstrap} (and --no-create-topic was given)"
            raise ServiceUnavailable(msg)
        return self._create(topic, deadline)

    def _create(self, topic: str, deadline: float) -> int:
        # `with`: the client is destroyed here, never by the garbage collector inside one of librdkafka's callbacks
        # (confluentinc/confluent-kafka-python#1761)
        with AdminClient({"bootstrap.servers": self.cfg.bootstrap}) as admin:
            timeout_s = max(1.0, deadline - time.monotonic())
            future = admin.create_topics([NewTopic(topic, num_partitions=self.cfg.partitions, replication_factor=-1)],
                                         request_timeout=timeout_s)[topic]
            try:
                future.result()
                log.info("created topic %s with %d partitions", topic, self.cfg.partitions)
            except KafkaException as exc:
                err = exc.args[0] if exc.args else None
                if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                    msg = f"cannot create topic {topic} on {self.cfg.bootstrap}: {exc}"
                    raise ServiceUnavailable(msg) from exc
        meta = self.producer.list_topics(topic, timeout=10)
        return len(meta.topics[topic].partitions)

    def on_full(self) -> None:
        """The local queue is full (the broker is slow or away): serve callbacks until there is room."""
        self.producer.poll(0.05)

    def poll(self) -> None:
        self.producer.poll(0)

    def in_flight(self) -> int:
        return len(self.producer)

    def flush(self, timeout: float) -> int:
        """Wait until everything is acknowledged (or failed); returns how many are still unacknowledged."""
        return int(self.producer.flush(timeout))

    def close(self) -> None:
        """Destroy the producer now, in this thread. Its callbacks are this sink's methods, so sink and producer form a
        reference cycle that only the garbage collector breaks, at a moment and in a thread of its choosing (a client
        destroyed inside one of librdkafka's callbacks can crash the process: confluentinc/confluent-kafka-python#1761).
        What is still unacknowledged is dropped (the run flushed with its timeout and counted it): ``Producer.close``
        alone would wait for it without end."""
        self.producer.purge()
        self.producer.close()

    @property
    def broken(self) -> bool:
        return self.failed > 0 or self.fatal is not None

    def error_text(self) -> str:
        if self.fatal is not None:
            return f"fatal producer error: {self.fatal.str()}"
        err = self.first_error
        return f"{self.failed} reading(s) could not be delivered within {self.cfg.delivery_timeout_s:.0f} s" + (
            f" (first error: {err.str()})" if err is not None else "")
