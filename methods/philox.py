"""Philox4x32-10 (Salmon et al., "Parallel Random Numbers: As Easy as 1, 2, 3", SC 2011), compiled (Numba): the
counter-based generator of DARE's drop masks.

The draw of an entry is a function of (seed, task, stream, position, the tensor's size). A tensor's entries fall in
blocks of 4 LANES, its last block holding the rest; a block of n entries has w = ``lanes(n)`` counters (LANES for a
whole block, ceil(n / 4) for the last), and its entry k w + j (k < 4, j < w) is word k of the counter (c + j low
word, high word, stream, task), c = the block's first entry / 4, under the key (seed low word, seed high word), its
top 24 bits times 2^-24, a float32 in [0, 1) as ``torch.rand`` makes. The four words of a counter thus feed four
contiguous runs of a block, so a loop over a block's counters reads and writes contiguous memory and vectorises
without shuffles (DARE version 4; version 3 gave word k of counter j to entry 4j + k). Draws are made where they
are used, in any order, at a fraction of a Mersenne Twister's cost; ``tests/test_merge_kernels.py`` checks
Random123's known answers and an independent NumPy transcription.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)  # Philox4x32 multipliers
_W0, _W1 = np.uint32(0x9E3779B9), np.uint32(0xBB67AE85)  # and key increments (Random123)
_LOW = np.uint64(0xFFFFFFFF)
Words = tuple[np.uint32, np.uint32, np.uint32, np.uint32]  # Philox's four output words
LANES = 8192  # counters a block of draws: its 4 LANES entries are four runs of LANES, one a word of the counters
_UNIT = np.float32(1.0 / (1 << 24))  # a draw is its top 24 bits times 2^-24: U[0, 1) on the float32 grid


@numba.njit(inline="always", cache=True)
def _philox(c0: np.uint32, c1: np.uint32, c2: np.uint32, c3: np.uint32, k0: np.uint32, k1: np.uint32) -> Words:
    """Philox4x32-10: four 32-bit words of counter (c0..c3) and two of key (k0, k1) to four random words."""
    for _ in range(10):
        p0, p1 = np.uint64(c0) * _M0, np.uint64(c2) * _M1
        c0, c1, c2, c3 = (
            np.uint32(np.uint32(p1 >> np.uint64(32)) ^ c1 ^ k0), np.uint32(p1 & _LOW),
            np.uint32(np.uint32(p0 >> np.uint64(32)) ^ c3 ^ k1), np.uint32(p0 & _LOW),
        )
        k0, k1 = np.uint32(k0 + _W0), np.uint32(k1 + _W1)
    return c0, c1, c2, c3


@numba.njit(cache=True)
def philox4x32(counter: np.ndarray, key: np.ndarray) -> tuple[int, int, int, int]:
    """The four words Philox4x32-10 makes of ``counter`` (4 uint32) under ``key`` (2 uint32)."""
    return _philox(counter[0], counter[1], counter[2], counter[3], key[0], key[1])


@numba.njit(inline="always", cache=True)
def _words(seed: int, stream: int, task: int, j: int) -> Words:
    """The four words of counter j of (task, stream) under the key ``seed``: entries 4j .. 4j + 3's draws."""
    k0, k1 = np.uint32(seed & 0xFFFFFFFF), np.uint32((seed >> 32) & 0xFFFFFFFF)
    return _philox(np.uint32(j & 0xFFFFFFFF), np.uint32(j >> 32), np.uint32(stream), np.uint32(task), k0, k1)


@numba.njit(inline="always", cache=True)
def _draw(word: np.uint32) -> np.float32:
    """A word's top 24 bits times 2^-24."""
    return np.float32(word >> np.uint32(8)) * _UNIT


@numba.njit(inline="always", cache=True)
def lanes(n: int) -> int:
    """Counters of a block of n entries: LANES for a whole block (4 LANES entries), ceil(n / 4) for a tensor's last."""
    return LANES if n == 4 * LANES else (n + 3) >> 2


@numba.njit(inline="always", cache=True)
def whole_runs(n: int, present: int) -> tuple[int, int, int]:
    """(w, whole, any) of a block of n entries of which the first ``present`` are wanted: w = lanes(n); counters
    j < whole feed all four runs (run k holds entries k w .. (k + 1) w - 1), counters whole <= j < any feed the runs
    that reach them (at most three counters of a tensor's last block when every entry is wanted)."""
    w = lanes(n)
    return w, max(0, min(w, present - 3 * w)), min(w, present)


@numba.njit(cache=True)
def fill_uniforms(seed: int, task: int, stream: int, start: int, size: int, out: np.ndarray) -> None:
    """out[i] = the draw of entry start + i of (seed, task, stream) of a tensor of ``size`` entries; ``start`` a
    multiple of 4 LANES."""
    n = out.shape[0]
    for offset in range(0, n, 4 * LANES):
        first, present = (start + offset) >> 2, min(4 * LANES, n - offset)
        w, whole, reached = whole_runs(min(4 * LANES, size - start - offset), present)
        r0, r1 = out[offset : offset + w], out[offset + w : offset + 2 * w]  # the runs, one view each: vectorised
        r2, r3 = out[offset + 2 * w : offset + 3 * w], out[offset + 3 * w : offset + 4 * w]
        for j in range(whole):
            r = _words(seed, stream, task, first + j)
            r0[j], r1[j], r2[j], r3[j] = _draw(r[0]), _draw(r[1]), _draw(r[2]), _draw(r[3])
        for j in range(whole, reached):
            r = _words(seed, stream, task, first + j)
            for lane in range(4):
                if lane * w + j < present:
                    out[offset + lane * w + j] = _draw(r[lane])


def uniforms(seed: int, task: int, stream: int, start: int, count: int, size: int) -> torch.Tensor:
    """The float32 draws U[0, 1) of entries start .. start + count - 1 of (seed, task, stream) of a tensor of ``size``
    entries; ``start`` a multiple of 4 LANES (a block's first entry)."""
    if start % (4 * LANES):
        raise ValueError(f"start {start} is not a multiple of {4 * LANES}, the first entry of a block of draws")
    out = np.empty(count, dtype=np.float32)
    fill_uniforms(seed, task, stream, start, size, out)
    return torch.from_numpy(out)


@numba.njit(inline="always", cache=True)
def keeps(seed: int, stream: int, task: int, j: int, bar: np.float32, dtype: type) -> tuple[float, float, float, float]:
    """1.0 or 0.0 (u > bar) in ``dtype`` for the four entries of counter j of (task, stream), one in each run of its
    block (the draws of ``uniforms``)."""
    r = _words(seed, stream, task, j)
    one, zero = dtype(1.0), dtype(0.0)
    return (
        one if _draw(r[0]) > bar else zero, one if _draw(r[1]) > bar else zero,
        one if _draw(r[2]) > bar else zero, one if _draw(r[3]) > bar else zero,
    )
