"""The kube_cluster fixture's reusable homes: the first home whose lock is free, held until the block ends."""

from __future__ import annotations

from pathlib import Path

from iotpipe_stack.cluster_testing import reusable_home


def test_each_holder_gets_its_own_home_and_none_when_all_are_taken(tmp_path: Path) -> None:
    with reusable_home(tmp_path, count=2) as first, reusable_home(tmp_path, count=2) as second:
        assert (first, second) == (tmp_path / "0", tmp_path / "1")
        with reusable_home(tmp_path, count=2) as third:
            assert third is None
    with reusable_home(tmp_path, count=2) as again:
        assert again == tmp_path / "0"  # released at the end of the block: the next session reuses it
