"""Wire encoding of readings (``iotcommon.messages.Reading``, schema reading.v1.json), made cheap.

A message is compact JSON such as
``{"v":1,"site":"site-00001","sensor":"TH1","ts":"2020-01-01T00:15:00Z","value":13.812,"unit":"C","seq":0}``
(the key order of ``Reading.encode``, which the stream job parses in the JVM without Python) and its key the site
id ``site-00001``: the producer contract of the stream job (docs/stream-job.md, "Substreams"): every reading of a
site goes to one partition, in send order. Values carry three decimals. Everything constant per device is built
once; per message only the value is formatted (as integer thousandths, which is much cheaper than float formatting).
The emit functions hand each (key, payload) to a ``produce(topic, payload, key)`` callable: the Kafka producer's own
method in production, a list in tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

from iot_simulators.engine import Block, Event, StepOutput
from iotcommon.messages import VERSION
from iotcommon.sensors import SENSORS

Produce = Callable[[str, bytes, bytes], object]
_FRACTIONS = [b"%03d" % i for i in range(1000)]


def site_id(number: int) -> str:
    """Stable site id: site-00001, site-00002, ..."""
    return f"site-{number:05d}"


def _prefix(site: str, sensor: str) -> bytes:
    head = json.dumps({"v": VERSION, "site": site, "sensor": sensor}, separators=(",", ":"))
    return head[:-1].encode() + b',"ts":"'


def _tail(sensor: str, seq: int) -> bytes:
    return b',"unit":"%s","seq":%d}' % (SENSORS[sensor].unit.encode(), seq)


class Encoder:
    """Per-device constant parts of messages for a list of sites."""

    def __init__(self, sites: list[str]) -> None:
        self.sites = sites
        self.keys = [site.encode() for site in sites]  # Kafka key = the site (the stream job's substream)
        self.prefixes = {s: [_prefix(site, s) for site in sites] for s in SENSORS}

    def emit_block(self, block: Block, topic: str, produce: Produce, on_full: Callable[[], None]) -> int:
        mid = b'%s","value":' % block.ts.encode()
        tail = _tail(block.sensor, block.seq)
        fr = _FRACTIONS
        for key, p, m in zip(self.keys, self.prefixes[block.sensor], block.milli, strict=True):
            payload = b"%s%s%d.%s%s" % (p, mid, m // 1000, fr[m % 1000], tail) if m >= 0 else b"%s%s-%d.%s%s" % (
                p, mid, -m // 1000, fr[-m % 1000], tail)
            try:
                produce(topic, payload, key)
            except BufferError:
                send_when_room(produce, on_full, topic, payload, key)
        return len(block.milli)

    def encode_event(self, event: Event) -> tuple[bytes, bytes]:
        p = self.prefixes[event.sensor][event.site]
        payload = b'%s%s","value":%s%s' % (p, event.ts.encode(), _num(event.value), _tail(event.sensor, event.seq))
        return self.keys[event.site], payload

    def emit_step(self, out: StepOutput, topic: str, produce: Produce, on_full: Callable[[], None]) -> int:
        """Send everything of one step: on-time blocks, motion events, then late readings. Returns the count."""
        sent = 0
        for block in out.blocks:
            sent += self.emit_block(block, topic, produce, on_full)
        for event in out.events:
            key, payload = self.encode_event(event)
            try:
                produce(topic, payload, key)
            except BufferError:
                send_when_room(produce, on_full, topic, payload, key)
            sent += 1
        for block in out.late:
            sent += self.emit_block(block, topic, produce, on_full)
        return sent

    def encode_all(self, outputs: Iterable[StepOutput]) -> list[tuple[bytes, bytes]]:
        """(key, payload) of every message, in send order (tests and tools)."""
        sink: list[tuple[bytes, bytes]] = []
        for out in outputs:
            self.emit_step(out, "", lambda _t, v, k: sink.append((k, v)), _never)
        return sink

    def encode_blocks(self, blocks: Iterable[Block]) -> list[tuple[bytes, bytes]]:
        sink: list[tuple[bytes, bytes]] = []
        for block in blocks:
            self.emit_block(block, "", lambda _t, v, k: sink.append((k, v)), _never)
        return sink


def send_when_room(produce: Produce, on_full: Callable[[], None], topic: str, payload: bytes, key: bytes) -> None:
    """The producer's queue is full: let ``on_full`` serve callbacks (wait), then retry, until the message is in.
    Backpressure only slows the simulator down; it never fails it (a broker that is away for good shows up as
    delivery failures, reported by the sink)."""
    while True:
        on_full()
        try:
            produce(topic, payload, key)
            return
        except BufferError:
            continue


def _num(value: float) -> bytes:
    return b"%.3f" % value


def _never() -> None:  # pragma: no cover - lists never fill up
    raise AssertionError

