"""The thin kopf layer: which objects get the finalizer, the retry backoff, the liveness probe (no API server)."""

from __future__ import annotations

import asyncio

import kopf
import pytest

from iot_operator import handlers
from iot_operator.config import OperatorConfig
from iot_operator.deps import Deps
from iot_operator.state import OperatorState


def memo_with_state() -> kopf.Memo:
    """kopf's memo as the startup handler leaves it (edges never called here)."""
    memo = kopf.Memo()
    memo.state = OperatorState(OperatorConfig(), Deps(kube=None, kafka=None, hbase=None))  # type: ignore[arg-type]
    return memo


def test_only_delete_policies_ask_for_the_finalizer() -> None:
    assert not handlers.needs_cleanup(spec={"kafka": {"topicDeletionPolicy": "Retain"}, "hbase": {}})
    assert handlers.needs_cleanup(spec={"kafka": {"topicDeletionPolicy": "Delete"}, "hbase": {}})
    assert handlers.needs_cleanup(spec={"kafka": {}, "hbase": {"tableDeletionPolicy": "Delete"}})


def test_backoff_doubles_up_to_the_maximum() -> None:
    state = OperatorState(OperatorConfig(max_backoff_seconds=300.0), Deps(None, None, None))  # type: ignore[arg-type]
    assert [state.backoff(r) for r in range(5)] == [5.0, 10.0, 20.0, 40.0, 80.0]
    assert state.backoff(40) == 300.0


def test_liveness_fails_without_a_watch_stream() -> None:
    async def probe_without_watcher() -> str:
        return await handlers.watch_alive(memo_with_state())

    with pytest.raises(kopf.PermanentError, match="no live watch-stream"):
        asyncio.run(probe_without_watcher())


def test_liveness_passes_with_a_watch_stream_and_the_resync_task() -> None:
    async def probe_with_tasks() -> str:
        never = asyncio.Event()
        memo = memo_with_state()
        watcher = asyncio.create_task(never.wait(), name="watcher for iotpipelines.v1alpha1.iotpipe.dev@ns")
        resync = asyncio.create_task(never.wait(), name="iotpipeline resync")
        memo.state.resync_task = resync
        try:
            return await handlers.watch_alive(memo)
        finally:
            watcher.cancel()
            resync.cancel()

    assert "1 watch-stream(s) alive" in asyncio.run(probe_with_tasks())


def test_a_bad_setting_stops_the_operator_at_startup(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    monkeypatch.setenv("IOTPIPE_OPERATOR_RESYNC_SECONDS", "0")
    memo = kopf.Memo()
    with pytest.raises(kopf.PermanentError, match=r"IOTPIPE_OPERATOR_RESYNC_SECONDS: 0\.0 is below the minimum"):
        asyncio.run(handlers.startup(settings=kopf.OperatorSettings(), memo=memo, logger=logging.getLogger("t")))
    assert "state" not in memo


def test_entrypoint_help_and_bad_settings(capsys: pytest.CaptureFixture[str]) -> None:
    from iot_operator.__main__ import main

    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "IOTPIPE_OPERATOR_RESYNC_SECONDS" in capsys.readouterr().out
    assert main(["--resync-seconds", "0"]) == 2
    assert "below the minimum" in capsys.readouterr().err
