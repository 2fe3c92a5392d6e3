"""What the pipeline must have stored after a chaos run, computed in plain Python from the readings topic as it was
actually written (simulator replays and producer retries included). Pure: no Kafka, no HBase, no pipeline code.

The rules (docs/stream-job.md, written again here on purpose, never imported from the job):

- a message that is not a valid reading is a dead letter, once per (partition, offset) of the readings topic;
- every valid message is copied to raw; HBase keys a reading by (site, sensor, ts, seq), so raw holds each identity
  once;
- day D of a site is (D 00:00, D+1 00:00] in the site's zone; a reading is late iff its site's clock (the newest event
  time among the site's readings up to and including it, in partition order) >= end of its day + the lateness;
  the late table holds each identity that was late at least once;
- the accepted readings, each identity once, give the daily aggregates: AggDay mean (TH1, TH2) or sum (HVAC1, HVAC2,
  MiAC1, MiAC2, W1), AggDayMov count (Mov1), AggDayDiff last meter reading of D - last of D-1 (by ts, then seq; only
  when D-1 has one), AggDayRest Diff - the day's sums of its parts;
- a day is final (compared) once the watermark (newest event time - delay) has passed its end.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

MEAN = ("TH1", "TH2")
SUM = ("HVAC1", "HVAC2", "MiAC1", "MiAC2", "W1")
PARTS = {"Etot": ("HVAC1", "HVAC2", "MiAC1", "MiAC2"), "Wtot": ("W1",)}
UNITS = {"TH1": "C", "TH2": "C", "HVAC1": "Wh", "HVAC2": "Wh", "MiAC1": "Wh", "MiAC2": "Wh", "W1": "l",
         "Etot": "Wh", "Wtot": "l", "Mov1": "count"}

Identity = tuple[str, str, int, int]  # site, sensor, ts (epoch ms), seq
AggKey = tuple[str, str, str]  # site, name, day


@dataclass(frozen=True)
class Reading:
    site: str
    sensor: str
    ts_ms: int
    value: float
    seq: int

    @property
    def ident(self) -> Identity:
        return (self.site, self.sensor, self.ts_ms, self.seq)


@dataclass
class Expected:
    raw: set[Identity] = field(default_factory=set)
    late: set[Identity] = field(default_factory=set)
    deadletters: set[int] = field(default_factory=set)  # offsets in the readings topic (one partition)
    aggregates: dict[AggKey, tuple[float, int]] = field(default_factory=dict)
    valid_messages: int = 0
    final_until_ms: int = 0  # days ending at or before this are final


def _ms(ts: str) -> int | None:
    """RFC 3339 UTC 'YYYY-MM-DDTHH:MM:SS[.fff]Z' -> epoch ms (integer arithmetic); None if not that form."""
    if not ts.endswith("Z"):
        return None
    try:
        dt = datetime.fromisoformat(ts[:-1]).replace(tzinfo=UTC)
    except ValueError:
        return None
    return (dt - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def parse_reading(value: bytes | None) -> Reading | None:
    """The reading in a message, or None if the message is not a valid reading (the load's malformed kinds)."""
    try:
        obj = json.loads(value or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(obj, dict) or obj.get("v") != 1 or set(obj) != {"v", "site", "sensor", "ts", "value", "unit",
                                                                        "seq"}:
        return None
    sensor, ts, val, seq = obj["sensor"], obj["ts"], obj["value"], obj["seq"]
    if UNITS.get(sensor) != obj["unit"] or not isinstance(ts, str) or not isinstance(seq, int):
        return None
    if not isinstance(val, int | float) or isinstance(val, bool):
        return None
    ms = _ms(ts)
    if ms is None:
        return None
    return Reading(str(obj["site"]), sensor, ms, float(val), seq)


def day_of(ts_ms: int, zone: ZoneInfo) -> date:
    """(D 00:00, D+1 00:00] local: a reading at exactly midnight belongs to the previous day."""
    wall = datetime.fromtimestamp(ts_ms / 1000, UTC).astimezone(zone)
    exact_midnight = wall.time() == time(0) and ts_ms % 1000 == 0
    return wall.date() - timedelta(days=1) if exact_midnight else wall.date()


def end_ms(day: date, zone: ZoneInfo) -> int:
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone).astimezone(UTC)
    return (end - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def expected(messages: Iterable[tuple[int, bytes | None]], zone: ZoneInfo, lateness_ms: int,
             watermark_delay_ms: int) -> Expected:
    """messages: (offset, value) of the readings topic in partition order (one partition)."""
    out = Expected()
    clock: dict[str, int] = {}
    accepted: dict[Identity, Reading] = {}
    for offset, value in messages:
        r = parse_reading(value)
        if r is None:
            out.deadletters.add(offset)
            continue
        out.valid_messages += 1
        out.raw.add(r.ident)
        clock[r.site] = max(clock.get(r.site, r.ts_ms), r.ts_ms)
        if clock[r.site] >= end_ms(day_of(r.ts_ms, zone), zone) + lateness_ms:
            out.late.add(r.ident)
        else:
            accepted.setdefault(r.ident, r)
    newest = max(clock.values(), default=0)
    out.final_until_ms = newest - watermark_delay_ms
    out.aggregates = aggregates(accepted.values(), zone, out.final_until_ms)
    return out


def aggregates(accepted: Iterable[Reading], zone: ZoneInfo, final_until_ms: int) -> dict[AggKey, tuple[float, int]]:
    values: dict[tuple[str, date, str], list[float]] = defaultdict(list)
    last: dict[tuple[str, date, str], Reading] = {}
    for r in accepted:
        key = (r.site, day_of(r.ts_ms, zone), r.sensor)
        values[key].append(r.value)
        if r.sensor in PARTS and (key not in last or (r.ts_ms, r.seq) > (last[key].ts_ms, last[key].seq)):
            last[key] = r
    out: dict[AggKey, tuple[float, int]] = {}
    for (site, day, sensor), vals in values.items():
        if end_ms(day, zone) > final_until_ms:
            continue
        d = day.isoformat()
        if sensor in MEAN:
            out[(site, f"AggDay[{sensor}]", d)] = (math.fsum(vals) / len(vals), len(vals))
        elif sensor in SUM:
            out[(site, f"AggDay[{sensor}]", d)] = (math.fsum(vals), len(vals))
        elif sensor == "Mov1":
            out[(site, "AggDayMov[Mov1]", d)] = (float(len(vals)), len(vals))
        elif sensor in PARTS:
            prev = last.get((site, day - timedelta(days=1), sensor))
            if prev is None:
                continue
            diff = last[(site, day, sensor)].value - prev.value
            out[(site, f"AggDayDiff[{sensor}]", d)] = (diff, 2)
            parts = [v for p in PARTS[sensor] for v in values.get((site, day, p), [])]
            out[(site, f"AggDayRest[{sensor}]", d)] = (diff - math.fsum(parts), 2 + len(parts))
    return out


def aggregate_differences(got: Mapping[AggKey, tuple[float, int]], want: Mapping[AggKey, tuple[float, int]],
                          shown: int = 5) -> list[str]:
    """What differs ([] = equal: same keys, same counts, values equal within float rounding)."""
    out = [f"missing {k}" for k in sorted(want.keys() - got.keys())[:shown]]
    out += [f"unexpected {k}" for k in sorted(got.keys() - want.keys())[:shown]]
    wrong = [k for k in sorted(want.keys() & got.keys())
             if got[k][1] != want[k][1] or not math.isclose(got[k][0], want[k][0], rel_tol=1e-9, abs_tol=1e-6)]
    out += [f"{k}: got {got[k]}, want {want[k]}" for k in wrong[:shown]]
    extra = len(want.keys() - got.keys()) + len(got.keys() - want.keys()) + len(wrong) - len(out)
    return out + ([f"... and {extra} more"] if extra > 0 else [])
