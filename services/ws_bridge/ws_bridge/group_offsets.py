"""A consumer group's committed offsets, read from outside the group: the bridge's catch-up at start (ws_bridge.tail)
reads the sync workers' group so.

With a consumer of that group that never joins it (no subscription, no commits), not with
``AdminClient.list_consumer_group_offsets``: librdkafka (2.16.0 here; open upstream) crashes the whole process when a
broker answers that request with NOT_COORDINATOR or COORDINATOR_NOT_AVAILABLE, as a broker that has just started does.
Its OffsetFetch response handler then asks the client's own consumer group to look the coordinator up again, and an
admin client has none: a NULL pointer in librdkafka's main thread (confluentinc/librdkafka#5040). That was the
segmentation fault of the bridge's live-Kafka test of a bridge started while Kafka is down (its core:
rd_kafka_cgrp_op <- rd_kafka_handle_OffsetFetch <- rd_kafka_ListConsumerGroupOffsetsResponse_parse, in rdk:main;
librdkafka's threads block signals, so Python's faulthandler printed nothing). A consumer has a group: it looks the
coordinator up again and asks again itself, and a coordinator still moving is asked again here.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

log = logging.getLogger(__name__)

#: A group's coordinator that moves or still loads (a broker that has just started) answers with one of these: asked
#: again, up to ATTEMPTS times in all, a second apart.
COORDINATOR_MOVING = frozenset({KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_NOT_AVAILABLE,
                                KafkaError.COORDINATOR_LOAD_IN_PROGRESS})
ATTEMPTS = 5
TIMEOUT_S = 10.0


def coordinator_moving(exc: KafkaException) -> bool:
    """Whether ``exc`` is a coordinator's passing error (COORDINATOR_MOVING): worth asking again. Pure."""
    error = exc.args[0] if exc.args else None
    return isinstance(error, KafkaError) and error.code() in COORDINATOR_MOVING


def committed_offsets(bootstrap: str, group: str, partitions: list[TopicPartition], *, client_id: str,
                      stop: threading.Event) -> list[TopicPartition]:
    """``group``'s committed offset of each partition (OFFSET_INVALID, -1001, where it has none; ``error`` set where
    the broker had one). Raises KafkaException when the offsets cannot be read, or ``stop`` is set while waiting."""
    with Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                   "client.id": client_id}) as reader:
        attempt = 1
        while True:
            try:
                return reader.committed(partitions, timeout=TIMEOUT_S)
            except KafkaException as exc:
                if not coordinator_moving(exc) or attempt == ATTEMPTS or stop.wait(1.0):
                    raise
                log.info("group %s's coordinator is not ready (%s): asking again", group, exc)
                attempt += 1
