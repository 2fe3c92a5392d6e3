"""Late (withheld) readings: which on-time readings are held back and when they are delivered.

A rule ``every:delay`` says: at every step that is a multiple of ``every``, deliver the reading generated ``delay``
earlier. That reading was withheld when it was generated; it is sent exactly once, late. If several rules claim the
same reading, the one with the longest delay keeps it (and the other delivers nothing at that step).
Defaults: ``20:2d`` and ``120:10d``, i.e. every 20 steps a 2-day-late reading, every 120 steps a 10-day-late one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from iotcommon.errors import ConfigError

STEPS_PER_UNIT = {"m": 1 / 15, "h": 4, "d": 96}
_DELAY = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*([mhd]?)\s*$")


@dataclass(frozen=True)
class LateRule:
    every: int  # steps
    delay: int  # steps

    def __str__(self) -> str:
        return f"{self.every}:{self.delay}steps"


def parse_rules(texts: tuple[str, ...]) -> tuple[LateRule, ...]:
    """``("20:2d", "120:10d")`` -> rules. Delay units: d (days of 96 steps), h, m (minutes), none = steps."""
    rules = []
    for text in texts:
        match = _DELAY.match(text)
        if not match:
            msg = f"late rule {text!r}: expected EVERY:DELAY such as 20:2d (every 20 steps, 2 days late)"
            raise ConfigError(msg)
        every, amount, unit = int(match[1]), int(match[2]), match[3] or ""
        delay_f = amount * STEPS_PER_UNIT[unit] if unit else float(amount)
        if delay_f != int(delay_f):
            msg = f"late rule {text!r}: the delay must be a whole number of 15-minute steps"
            raise ConfigError(msg)
        if every < 1 or delay_f < 1:
            msg = f"late rule {text!r}: EVERY and DELAY must be at least one step"
            raise ConfigError(msg)
        rules.append(LateRule(every, int(delay_f)))
    return tuple(rules)


def withheld_delay(step: int, rules: tuple[LateRule, ...]) -> int:
    """How many steps the reading generated at ``step`` is held back (0: it is sent on time)."""
    if step < 1:
        return 0
    return max((r.delay for r in rules if (step + r.delay) % r.every == 0), default=0)


def delivered_at(step: int, rules: tuple[LateRule, ...]) -> list[int]:
    """The generation steps whose withheld reading is delivered at ``step``, oldest first."""
    out = {step - r.delay for r in rules
           if step % r.every == 0 and step - r.delay >= 1 and withheld_delay(step - r.delay, rules) == r.delay}
    return sorted(out)
