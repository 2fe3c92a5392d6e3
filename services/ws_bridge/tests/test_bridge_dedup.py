"""RecentIdents (pure): the window that keeps a replayed reading from being shown twice on the uncommitted live path."""

from __future__ import annotations

import pytest

from ws_bridge.dedup import RecentIdents


def test_an_identity_is_new_once() -> None:
    window = RecentIdents(10)
    assert [window.first_time(i) for i in ("a/TH1/t1/1", "a/TH1/t2/2", "a/TH1/t1/1")] == [True, True, False]


def test_the_window_forgets_the_oldest_beyond_its_capacity() -> None:
    window = RecentIdents(2)
    for ident in ("one", "two", "three"):
        assert window.first_time(ident)
    assert len(window) == 2
    assert not window.first_time("three") and not window.first_time("two")
    assert window.first_time("one")  # forgotten: the oldest of three in a window of two


def test_a_replay_inside_the_window_is_dropped_whole() -> None:
    window = RecentIdents(1000)
    sent = [f"site1/W1/2020-01-01T00:{m:02d}:00Z/{m}" for m in range(60)]
    shown = [i for i in sent[:40] if window.first_time(i)]  # before the abort
    shown += [i for i in sent if window.first_time(i)]  # the restored job sends all 60 again
    assert shown == sent


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RecentIdents(0)
