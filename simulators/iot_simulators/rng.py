"""Counter-based random numbers: one independent stream per (seed, site, stream), read at any index.

Each stream is a SplitMix64 sequence whose state is derived from (seed, site number, stream code); the value at index
``i`` is ``mix(state + (i + 1) * GOLDEN)``. Because values are addressed by index (a quarter-hour or a day number) and
not drawn in sequence, a site's readings do not depend on how many other sites run, on the start instant, or on how
the simulation is chunked; and the whole computation is vectorised over sites and steps with numpy.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np
import numpy.typing as npt

U64 = npt.NDArray[np.uint64]
F64 = npt.NDArray[np.float64]

_MASK = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_M1 = 0xBF58476D1CE4E5B9
_M2 = 0x94D049BB133111EB
_GOLDEN_U = np.uint64(_GOLDEN)
_M1_U = np.uint64(_M1)
_M2_U = np.uint64(_M2)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / float(1 << 53)


class Stream(IntEnum):
    """Independent random streams of one site. Values are part of the determinism contract: never renumber."""

    TEMP_MEAN = 1
    TEMP_LOW = 2
    TEMP_PEAK = 3
    TH1 = 4
    TH2 = 5
    HVAC1 = 6
    HVAC1_ON = 7
    HVAC2 = 8
    HVAC2_ON = 9
    MIAC1 = 10
    MIAC2 = 11
    W1 = 12
    W1_DAY = 13
    ETOT = 14
    WTOT = 15
    MOV_COUNT = 16
    MOV_TIME = 17  # index = day * 8 + event number


def mix64(z: int) -> int:
    """The SplitMix64 finaliser on a Python int (used to derive stream states)."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * _M1) & _MASK
    z = ((z ^ (z >> 27)) * _M2) & _MASK
    return z ^ (z >> 31)


def stream_state(seed: int, site_number: int, stream: Stream) -> int:
    """The 64-bit state of one stream."""
    return mix64(mix64(mix64(seed + _GOLDEN) ^ (site_number * _GOLDEN)) ^ (int(stream) * _M1))


def stream_states(seed: int, site_numbers: list[int], stream: Stream) -> U64:
    return np.array([stream_state(seed, n, stream) for n in site_numbers], dtype=np.uint64)


def uniform(states: U64, index: npt.NDArray[np.int64]) -> F64:
    """U[0,1) values, shape (len(index), len(states)): row i holds every site's value at ``index[i]``."""
    z = states[None, :] + (index.astype(np.uint64)[:, None] + np.uint64(1)) * _GOLDEN_U
    z ^= z >> _S30
    z *= _M1_U
    z ^= z >> _S27
    z *= _M2_U
    z ^= z >> _S31
    out: F64 = (z >> _S11).astype(np.float64) * _TO_UNIT
    return out


def uniform_between(states: U64, index: npt.NDArray[np.int64], low: float, high: float) -> F64:
    return low + (high - low) * uniform(states, index)
