"""Unit tests of the pure parts of tests/kube_e2e_kit.py (no cluster): what a wait accepts as an answer, and the
failure digest that CI's output keeps."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location("kube_e2e_kit", Path(__file__).with_name("kube_e2e_kit.py"))
assert _spec is not None and _spec.loader is not None
kit = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("kube_e2e_kit", kit)
_spec.loader.exec_module(kit)


def test_a_wait_takes_no_empty_collection_for_an_answer() -> None:
    """The lateness step once took an empty table's revisions ({}) for "revisions above 1" and then waited 900 s for
    a key of that empty dict to be revised (CI, twice)."""
    assert not any(kit.ready(v) for v in (None, False, {}, [], set(), (), "", b""))
    assert all(kit.ready(v) for v in (True, 0, {"k": 1}, [0], "x", 0.0))


def test_a_wait_returns_the_first_ready_value() -> None:
    answers = iter([{}, None, {"site/day": 2}])
    assert kit.wait_for("revisions", lambda: next(answers), timeout=5, interval=0) == {"site/day": 2}


def test_the_digest_gives_restarts_and_the_troubled_lines_of_flink_pods(tmp_path: Path) -> None:
    (tmp_path / "logs-p-flink-jobmanager-1.txt").write_text(
        "INFO Completed checkpoint 3\nWARN org.apache.kafka.common.errors.InvalidPidMappingException: x\nINFO ok\n")
    (tmp_path / "logs-p-sync-1.txt").write_text("ERROR not shown: not a Flink pod\n")
    found = [
        {"metadata": {"name": "p-flink-jobmanager-1"},
         "status": {"phase": "Running", "containerStatuses": [{"restartCount": 2}]}},
        {"metadata": {"name": "p-sync-1"}, "status": {"phase": "Pending"}},
    ]  # fmt: skip
    lines = kit.failure_digest(found, tmp_path)
    assert lines[0] == "pod p-flink-jobmanager-1: Running, 2 restarts"
    assert lines[1].endswith("InvalidPidMappingException: x")
    assert lines[2:] == ["pod p-sync-1: Pending, 0 restarts"]


def test_the_day_open_at_an_instant_is_found_per_site_and_a_partial_first_day_is_left_out() -> None:
    def day(site: str, start: str, end: str, name: str = "AggDay[TH1]") -> dict[str, str]:
        return {"site": site, "name": name, "window_start": start, "window_end": end}

    found = {
        b"1": day("s1", "2020-01-02T00:00:00+02:00", "2020-01-03T00:00:00+02:00"),  # holds s1's edge
        b"2": day("s1", "2020-01-01T00:00:00+02:00", "2020-01-02T00:00:00+02:00"),  # the day before
        b"3": day("s1", "2020-01-02T00:00:00+02:00", "2020-01-03T00:00:00+02:00", "AggDay[W1]"),
        b"4": day("s2", "2019-12-31T00:00:00+00:00", "2020-01-01T00:00:00+00:00"),  # s2's partial first day
        b"5": day("s3", "2020-01-02T00:00:00+02:00", "2020-01-03T00:00:00+02:00"),  # no edge for s3
    }
    edge = {"s1": kit.iso_ms("2020-01-02T22:00:00Z"), "s2": kit.iso_ms("2019-12-31T23:00:00Z")}
    first = {"s1": kit.iso_ms("2019-12-31T22:15:00Z"), "s2": kit.iso_ms("2019-12-31T22:15:00Z")}
    assert kit.days_spanning(found, "AggDay[TH1]", edge, first) == [found[b"1"]]
    # the interval end rule: a reading stamped at midnight belongs to the day that ends there
    midnight = {"s1": kit.iso_ms("2020-01-02T00:00:00+02:00")}
    assert kit.days_spanning(found, "AggDay[TH1]", midnight, first) == [found[b"2"]]
