"""Record -> row: each input topic lands in its table under a deterministic key; anything unmappable becomes a dead
letter (deadletter.v1) keyed by where the record was. Expected keys are spelled out here from the layout rule
``<crc32(site/series) % 16 as 2 hex>|<site>|<series>|<order part>``, not computed with the code under test."""

from __future__ import annotations

import base64
import json
import zlib
from typing import Any

import jsonschema
import pytest
from sync_fakes import FakeMessage

from hbase_sync.mapping import MESSAGE, Mapper, latest_per_key, stored_revision
from iotcommon.messages import load_schema
from iotcommon.topics import Topics

T = Topics("p1")
MAPPER = Mapper(T)


def salt(text: str) -> bytes:
    return f"{zlib.crc32(text.encode()) % 16:02x}".encode()


def reading(**over: Any) -> dict[str, Any]:
    return {"v": 1, "site": "s1", "sensor": "TH1", "ts": "2020-01-01T00:15:00Z", "value": 21.5, "unit": "C",
            "seq": 7, **over}


def aggregate(**over: Any) -> dict[str, Any]:
    return {"v": 1, "site": "s1", "name": "AggDay[TH1]", "kind": "AggDay", "sensor": "TH1", "day": "2020-01-01",
            "value": 20.25, "unit": "C", "count": 96, "revision": 1, "window_start": "2019-12-31T22:00:00Z",
            "window_end": "2020-01-01T22:00:00Z", "emitted_at": "2020-01-02T00:00:01Z", **over}


def enc(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def test_raw_reading_row_key_is_salted_series_then_time_then_seq_and_keeps_the_bytes() -> None:
    payload = enc(reading())
    row = MAPPER.map(FakeMessage(T.raw, 3, 41, payload))
    # 2020-01-01T00:15:00Z = 1577837700 s since the epoch
    assert row.table == "raw"
    assert row.key == salt("s1/TH1") + b"|s1|TH1|1577837700000|0000000007"
    assert row.cells == {b"d:m": payload}
    assert row.rejected is None


def test_fractional_timestamps_are_floored_to_the_millisecond() -> None:
    row = MAPPER.map(FakeMessage(T.raw, 0, 0, enc(reading(ts="2020-01-01T00:15:00.123999Z"))))
    assert row.key.endswith(b"|1577837700123|0000000007")


def test_late_reading_goes_to_the_late_table_under_its_reading_key() -> None:
    payload = enc({"v": 1, "reading": reading(sensor="W1", unit="l", value=3.0), "reason": "beyond-allowed-lateness",
                   "day": "2020-01-01", "late_by_ms": 5})
    row = MAPPER.map(FakeMessage(T.late, 0, 1, payload))
    assert (row.table, row.key, row.cells) == ("late", salt("s1/W1") + b"|s1|W1|1577837700000|0000000007",
                                               {b"d:m": payload})


def test_aggregate_row_key_is_site_name_day_and_carries_the_revision() -> None:
    payload = enc(aggregate(revision=3))
    row = MAPPER.map(FakeMessage(T.aggregates, 0, 9, payload))
    assert row.table == "aggregates"
    assert row.key == salt("s1/AggDay[TH1]") + b"|s1|AggDay[TH1]|2020-01-01"
    assert row.revision == 3
    assert row.cells == {b"d:m": payload}


def test_dead_letter_of_the_stream_job_is_keyed_by_the_rejected_record() -> None:
    letter = {"v": 1, "reason": "schema", "detail": "x", "source_topic": "p1.readings", "partition": 2, "offset": 99,
              "key_b64": None, "payload_b64": "e30=", "at": "2020-01-01T00:00:00Z"}
    row = MAPPER.map(FakeMessage(T.deadletter, 0, 5, enc(letter)))
    assert row.table == "deadletters"
    assert row.key == salt("p1.readings/2") + b"|p1.readings|2|" + b"99".rjust(19, b"0")
    assert row.rejected is None


BAD = [
    (T.raw, b"{not json", "unparsable"),
    (T.raw, None, "unparsable"),
    (T.raw, b"[1, 2]", "schema"),
    (T.raw, enc(reading(sensor="XX9")), "unknown-sensor"),
    (T.raw, enc(reading(seq=-1)), "schema"),
    (T.raw, enc(reading(ts="2300-01-01T00:00:00Z")), "unmappable"),  # 14-digit epoch ms breaks key order
    (T.raw, enc(reading(seq=10**10)), "unmappable"),
    (T.aggregates, enc(aggregate(revision=0)), "schema"),
    (T.aggregates, enc(aggregate(revision=True)), "schema"),
    (T.aggregates, enc(aggregate(name="AggDay[TH1]|x")), "schema"),
    (T.aggregates, enc(aggregate(day="2020-02-30")), "schema"),
    (T.aggregates, enc(aggregate(site="a/b")), "schema"),
    (T.aggregates, enc({**aggregate(), "extra": 1}), "schema"),
    (T.late, enc({"v": 1, "reading": {"v": 1}, "reason": "x", "day": "2020-01-01", "late_by_ms": 1}), "schema"),
    (T.deadletter, enc({"v": 1, "reason": "schema"}), "schema"),
    ("p1.unknown", enc(reading()), "unmappable"),
]


@pytest.mark.parametrize(("topic", "payload", "reason"), BAD)
def test_an_unmappable_record_becomes_a_dead_letter_row_with_reason_and_original_bytes(
    topic: str, payload: bytes | None, reason: str
) -> None:
    record = FakeMessage(topic, 4, 1234, payload, _key=b"s1/TH1", _ts=1_577_836_800_250)
    row = MAPPER.map(record)
    assert row.table == "deadletters"
    assert row.rejected == reason
    assert row.key == salt(f"{topic}/4") + f"|{topic}|4|".encode() + b"1234".rjust(19, b"0")
    letter = json.loads(row.cells[MESSAGE])
    jsonschema.validate(letter, load_schema("deadletter.v1.json"))
    assert letter["reason"] == reason
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (topic, 4, 1234)
    assert base64.b64decode(letter["payload_b64"]) == (payload or b"")
    assert base64.b64decode(letter["key_b64"]) == b"s1/TH1"
    assert letter["at"] == "2020-01-01T00:00:00.250Z"  # the record's Kafka timestamp: replays give the same row


def test_mapping_is_deterministic_so_replays_rewrite_identical_rows() -> None:
    for topic, payload in [(T.raw, enc(reading())), (T.aggregates, enc(aggregate())), (T.raw, b"garbage")]:
        assert MAPPER.map(FakeMessage(topic, 1, 2, payload)) == MAPPER.map(FakeMessage(topic, 1, 2, payload))


def test_highest_revision_wins_whatever_the_arrival_order() -> None:
    rows = [MAPPER.map(FakeMessage(T.aggregates, 0, i, enc(aggregate(revision=r, value=float(r)))))
            for i, r in enumerate([2, 5, 1, 4])]
    other = MAPPER.map(FakeMessage(T.aggregates, 0, 9, enc(aggregate(day="2020-01-02"))))
    latest = latest_per_key([*rows, other])
    assert len(latest) == 2
    assert json.loads(latest[rows[0].key].cells[MESSAGE])["revision"] == 5
    assert latest[other.key] is other


def test_stored_revision_reads_the_cell_and_treats_garbage_as_zero() -> None:
    assert stored_revision(enc(aggregate(revision=7))) == 7
    assert stored_revision(b"\xff") == 0
    assert stored_revision(b"[]") == 0
    assert stored_revision(enc({"revision": "7"})) == 0
