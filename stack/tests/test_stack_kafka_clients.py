"""The session's Kafka client leak check (iotpipe_stack.kafka_clients), with real confluent-kafka clients pointed at a
port nothing listens on (no broker needed: the check only looks at the objects)."""

from __future__ import annotations

import gc
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from iotpipe_stack.kafka_clients import describe, is_open, live_clients, open_clients
from iotpipe_stack.ports import free_ports


class Holder:
    producer: Any = None

    def on_error(self, _err: object) -> None:
        return None


def new_clients(before: set[int]) -> list[object]:
    return [c for c in live_clients() if id(c) not in before]


def test_a_client_still_held_is_found_with_its_holder_until_it_is_released() -> None:
    (port,) = free_ports(1)
    before = {id(c) for c in live_clients()}
    holder = Holder()
    holder.producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}"})
    found = new_clients(before)
    assert found == [holder.producer]
    assert describe(found) == "Producer held by a Holder"
    assert is_open(holder.producer) and holder.producer in open_clients()
    holder.producer.close()
    assert not is_open(holder.producer) and holder.producer not in open_clients()  # alive, but harmless
    del found, holder.producer
    assert new_clients(before) == []


def test_every_kind_of_client_reads_as_open_until_it_is_closed() -> None:
    (port,) = free_ports(1)
    conf = {"bootstrap.servers": f"127.0.0.1:{port}"}
    with Producer(conf) as producer, Consumer({**conf, "group.id": "g"}) as consumer, AdminClient(conf) as admin:
        assert is_open(producer) and is_open(consumer) and is_open(admin)
    assert not is_open(producer) and not is_open(consumer) and not is_open(admin)


def test_a_client_only_a_garbage_cycle_holds_is_found_before_the_collector_runs() -> None:
    (port,) = free_ports(1)
    before = {id(c) for c in live_clients()}
    gc.disable()  # the cycle stays uncollected until the check has seen it
    try:
        holder = Holder()
        holder.producer = Producer({"bootstrap.servers": f"127.0.0.1:{port}", "error_cb": holder.on_error})
        holder.producer.close()  # destroyed now (the collector may free the object later, without librdkafka)
        del holder  # unreachable: holder -> producer -> its error_cb, a method bound to holder
        assert [type(c).__name__ for c in new_clients(before)] == ["Producer"]
    finally:
        gc.enable()
    gc.collect()
    assert new_clients(before) == []
