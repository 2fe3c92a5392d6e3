"""The chaos run's plan: the load (simulator processes, malformed messages) and the kill schedule, all from one seed.
Pure: no I/O.

Every component is killed once, one at a time. Each kill happens when the readings topic holds a seeded fraction of
the planned load ("a random moment", reproducible). The simulator is always the first victim: it must still be
running, and a restarted simulator replays its sites from the start (it keeps no position), so an early kill keeps the
replayed readings within the allowed lateness (duplicates the job drops) rather than turning them into late records.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

#: every component the run kills with -9, once
COMPONENTS: tuple[str, ...] = ("simulator", "kafka", "stream-job", "hbase-sync", "thrift", "hbase", "ws-bridge")
QUARTER_SENSORS = 7  # readings per site and 15-minute step, besides midnight meters and motion events
STEP_S = 900


@dataclass(frozen=True)
class Plan:
    seed: int = 15
    simulators: int = 2
    sites_per_simulator: int = 2
    steps: int = 1800  # 15-minute steps per simulator (1800 = 18.75 days)
    seconds: float = 60.0  # how long the simulators take at their pace (before any kill)
    malformed_every: int = 500  # one malformed message per this many planned readings
    start: str = "2020-03-20T00:00"  # local time of the site zone (Europe/Athens): the DST change of 29 Mar inside
    components: tuple[str, ...] = COMPONENTS  # what is killed (the simulator always first)

    @property
    def sites(self) -> int:
        return self.simulators * self.sites_per_simulator

    @property
    def planned_readings(self) -> int:
        """About how many readings the simulators send (quarter sensors only: a lower bound)."""
        return self.sites * self.steps * QUARTER_SENSORS

    @property
    def speed(self) -> int:
        """The simulators' pace (simulated seconds per real second) that spreads the load over `seconds`."""
        return max(1, round(self.steps * STEP_S / self.seconds))

    @property
    def malformed(self) -> int:
        return max(1, self.planned_readings // self.malformed_every)

    def simulator_args(self, index: int) -> list[str]:
        return ["--sites", str(self.sites_per_simulator), "--site-offset", str(index * self.sites_per_simulator),
                "--seed", str(self.seed), "--start", self.start, "--steps", str(self.steps),
                "--speed", str(self.speed), "--no-create-topic", "--progress-s", "10"]


@dataclass(frozen=True)
class Kill:
    component: str
    at_fraction: float  # of the planned readings present in the readings topic


def kill_schedule(plan: Plan) -> list[Kill]:
    """Every component once, at seeded moments; the simulator first (see the module doc)."""
    rng = random.Random(plan.seed)
    moments = sorted(rng.uniform(0.05, 0.9) for _ in COMPONENTS)
    first = min(moments[0], 0.08)  # early: the replay of a restarted simulator stays within the allowed lateness
    others = list(COMPONENTS[1:])
    rng.shuffle(others)
    kills = [Kill("simulator", first)] + [Kill(c, m) for c, m in zip(others, moments[1:], strict=True)]
    return [k for k in kills if k.component in plan.components]


def malformed_messages(plan: Plan) -> list[bytes]:
    """Messages the stream job must reject (dead letters), several kinds, seeded."""
    rng = random.Random(plan.seed + 1)
    out: list[bytes] = []
    for i in range(plan.malformed):
        site = f"site-{rng.randrange(1, plan.sites + 1):05d}"
        kind = i % 4
        if kind == 0:
            out.append(b"\xff\xfe not json " + str(i).encode())
        elif kind == 1:  # a valid shape with the wrong unit
            out.append(json.dumps({"v": 1, "site": site, "sensor": "TH1", "ts": "2020-03-21T10:00:00Z",
                                   "value": 20.5, "unit": "Wh", "seq": i}, separators=(",", ":")).encode())
        elif kind == 2:  # truncated JSON
            out.append(b'{"v":1,"site":"' + site.encode() + b'","sensor":"W1","ts":')
        else:  # an unknown sensor
            out.append(json.dumps({"v": 1, "site": site, "sensor": "XX9", "ts": "2020-03-22T10:00:00Z",
                                   "value": 1.0, "unit": "l", "seq": i}, separators=(",", ":")).encode())
    return out
