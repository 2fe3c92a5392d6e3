"""Shared by the stream job's real-service tests: the reading record they build their input from, and how they
compare the job's final aggregates with the expected ones (computed by each test in plain Python).

Imported by path (the tests folder is not a package): `sys.path.insert(0, <this folder>)`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

#: the unit of every sensor the tests use
UNITS = {"TH1": "C", "TH2": "C", "HVAC1": "Wh", "HVAC2": "Wh", "MiAC1": "Wh", "MiAC2": "Wh", "W1": "l",
         "Etot": "Wh", "Wtot": "l", "Mov1": "count"}

#: key '<site>/<name>/<day>' -> (value, count)
Pairs = dict[str, tuple[float, int]]


@dataclass(frozen=True)
class R:
    site: str
    sensor: str
    ts: datetime  # aware UTC
    value: float
    seq: int

    @property
    def ts_text(self) -> str:
        return self.ts.strftime("%Y-%m-%dT%H:%M:%SZ")

    def encode(self, pretty: bool = False) -> bytes:
        obj = {"v": 1, "site": self.site, "sensor": self.sensor, "ts": self.ts_text, "value": self.value,
               "unit": UNITS[self.sensor], "seq": self.seq}
        if pretty:  # valid, but not in the canonical compact form: the job's Python slow path
            return json.dumps(dict(reversed(list(obj.items()))), indent=1).encode()
        return json.dumps(obj, separators=(",", ":")).encode()

    @property
    def ident(self) -> tuple[str, str, datetime, int]:
        return (self.site, self.sensor, self.ts, self.seq)


def latest(messages: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """The newest revision of every aggregate key among Kafka messages (each keyed '<site>/<name>/<day>')."""
    best: dict[str, dict[str, Any]] = {}
    for m in messages:
        agg = json.loads(m.value)
        key = m.key.decode()
        assert key == f"{agg['site']}/{agg['name']}/{agg['day']}"
        if key not in best or agg["revision"] > best[key]["revision"]:
            best[key] = agg
    return best


def as_pairs(got: dict[str, dict[str, Any]]) -> Pairs:
    return {k: (v["value"], v["count"]) for k, v in got.items()}


def finals(kit: Any, topic: str) -> Pairs:
    """(value, count) of the newest revision of every aggregate on ``topic``, read to its end through ``kit``."""
    return as_pairs(latest(kit.read_all(topic, idle=0.5)))


def same(got: Pairs, want: Pairs) -> bool:
    """The same keys, counts equal, values equal up to float summation order."""
    return got.keys() == want.keys() and all(
        got[k][1] == want[k][1] and math.isclose(got[k][0], want[k][0], rel_tol=1e-9, abs_tol=1e-6) for k in want)


def difference(got: Pairs, want: Pairs, shown: int = 8) -> str:
    """What differs, for a failure message."""
    missing = sorted(want.keys() - got.keys())
    extra = sorted(got.keys() - want.keys())
    wrong = sorted(k for k in want.keys() & got.keys() if not same({k: got[k]}, {k: want[k]}))
    return (f"{len(got)} keys, want {len(want)}; missing {missing[:shown]}; unexpected {extra[:shown]}; "
            f"wrong {[(k, got[k], want[k]) for k in wrong[:shown]]}")
