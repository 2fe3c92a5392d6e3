"""What the running operator holds: its settings, its edges, the pipelines the watch has seen and the periodic-pass
task. Created once by the startup handler and kept in kopf's memo (``memo.state``); nothing of it is module global."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from dataclasses import dataclass, field

from iot_operator.config import OperatorConfig
from iot_operator.deps import Deps


@dataclass
class OperatorState:
    config: OperatorConfig
    deps: Deps
    known: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (namespace, name) seen by the watch
    resync_task: asyncio.Task[None] | None = None
    locks: defaultdict[str, threading.RLock] = field(default_factory=lambda: defaultdict(threading.RLock))

    def lock_for(self, uid: str) -> threading.RLock:
        """Serialises every pass over one IoTPipeline (kopf's handlers and the periodic pass run in threads)."""
        return self.locks[uid]

    def backoff(self, retry: int) -> float:
        """5 s, 10 s, 20 s, ... up to IOTPIPE_OPERATOR_MAX_BACKOFF_SECONDS."""
        return float(min(self.config.max_backoff_seconds, 5.0 * 2 ** min(retry, 16)))
