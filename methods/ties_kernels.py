"""TIES's compiled kernels (Numba): the trim, sign election and disjoint merge, the threshold's counting pass, and
DARE + TIES (the election and disjoint merge of the dropped and rescaled task vectors).

Each holds eight tasks' values of an entry in registers at once: a loop over entries whose body
names each task's array (``_group``) is one the compiler vectorises, where a loop over a run-time
task index is not, and the sums over tasks then cost no trip through memory. Tasks come in groups
of GROUP, a task list padded to whole groups with the origin itself (tau = 0: trimmed, never in a
bracket, adding nothing), so a block of a tensor is read by one sweep a group: about the bandwidth
floor for eight tasks (docs/performance.md).

DARE + TIES draws a stretch of every task's masks first (STRETCH counters of a block of draws:
four runs of a tensor's entries, ``philox``), then elects and merges each run in one sweep a group
as TIES does, each dropped value made again from its input and mask (no faster when kept in a
buffer instead: docs/performance.md).

The arithmetic is ``ties.ties_tensor``'s, ``selection``'s and ``dare.dare_ties_tensor``'s, operation
for operation and in task order (``tests/test_merge_engine_identity.py``, ``tests/test_merge_kernels.py``).
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
import torch

from fusionbench.methods.kernels import Arrays, flat, origin_of
from fusionbench.methods.philox import LANES, keeps, lanes

BLOCK = 2048  # entries of every task per step of TIES: T blocks stay in L2
STRETCH = 2048  # counters per step of DARE + TIES: each task's masks of four runs of STRETCH entries stay in L2
GROUP = 8  # tasks a sweep over a block; _group, _bounds and the loops below name each of them


@numba.njit(inline="always", cache=True)
def _group(thetas: Arrays, first: int, start: int, stop: int) -> Arrays:
    """Entries start:stop of tasks first .. first + GROUP - 1."""
    return (
        thetas[first][start:stop], thetas[first + 1][start:stop], thetas[first + 2][start:stop], thetas[first + 3][start:stop],
        thetas[first + 4][start:stop], thetas[first + 5][start:stop], thetas[first + 6][start:stop], thetas[first + 7][start:stop],
    )


@numba.njit(inline="always", cache=True)
def _bounds(values: np.ndarray, first: int, dtype: type) -> tuple:
    """values[first : first + GROUP] as GROUP scalars of ``dtype``."""
    v = values[first : first + GROUP]
    return (dtype(v[0]), dtype(v[1]), dtype(v[2]), dtype(v[3]), dtype(v[4]), dtype(v[5]), dtype(v[6]), dtype(v[7]))


@numba.njit(inline="always", cache=True)
def _trimmed(theta: np.floating, origin: np.floating, bar: np.floating, zero: np.floating) -> np.floating:
    """tau = theta - origin, or 0 where |tau| <= bar (``torch.hardshrink``: a NaN stays)."""
    tau = theta - origin
    return zero if (tau >= -bar) & (tau <= bar) else tau


@numba.njit(inline="always", cache=True)
def agreeing(
    tau: np.floating, gamma: np.floating, total: np.floating, count: np.floating, zero: np.floating, one: np.floating
) -> tuple[np.floating, np.floating]:
    """(total, count) after one task: its product with the elected sign clamped at 0 (a NaN stays NaN) added, and
    counted when positive."""
    product = tau * gamma
    product = zero if product < 0 else product
    return total + product, count + (one if product > 0 else zero)


@numba.njit(inline="always", cache=True)
def scaled(totals: np.ndarray, gamma: np.ndarray, counts: np.ndarray, mean: bool, factor: np.floating, base: np.ndarray, out: np.ndarray) -> None:
    """out = base + factor * gamma * totals, divided by the count of agreeing entries (at least 1) when ``mean``."""
    if mean:
        for i in range(out.shape[0]):
            out[i] = totals[i] * gamma[i] / max(counts[i], counts.dtype.type(1.0)) * factor + base[i]
    else:
        for i in range(out.shape[0]):
            out[i] = totals[i] * gamma[i] * factor + base[i]


@numba.njit(inline="always", cache=True)
def _signs(gamma: np.ndarray) -> None:
    """gamma = torch.sign(gamma): 0 for a zero or NaN sum."""
    one, zero = gamma.dtype.type(1.0), gamma.dtype.type(0.0)
    for i in range(gamma.shape[0]):
        gamma[i] = one if gamma[i] > 0 else (-one if gamma[i] < 0 else zero)


@numba.njit(inline="always", cache=True)
def _elect_group(xs: Arrays, bars: tuple, origin: np.ndarray, gamma: np.ndarray) -> None:
    """gamma[i] += the group's trimmed tau, task after task."""
    zero = gamma.dtype.type(0.0)
    for i in range(gamma.shape[0]):
        o, g = origin[i], gamma[i]
        g += _trimmed(xs[0][i], o, bars[0], zero)
        g += _trimmed(xs[1][i], o, bars[1], zero)
        g += _trimmed(xs[2][i], o, bars[2], zero)
        g += _trimmed(xs[3][i], o, bars[3], zero)
        g += _trimmed(xs[4][i], o, bars[4], zero)
        g += _trimmed(xs[5][i], o, bars[5], zero)
        g += _trimmed(xs[6][i], o, bars[6], zero)
        g += _trimmed(xs[7][i], o, bars[7], zero)
        gamma[i] = g


@numba.njit(inline="always", cache=True)
def _agree_group(xs: Arrays, bars: tuple, origin: np.ndarray, gamma: np.ndarray, totals: np.ndarray, counts: np.ndarray) -> None:
    """(totals, counts) after the group's tasks (``agreeing``), the trimmed tau made again from the inputs."""
    zero, one = gamma.dtype.type(0.0), gamma.dtype.type(1.0)
    for i in range(gamma.shape[0]):
        o, g, total, count = origin[i], gamma[i], totals[i], counts[i]
        total, count = agreeing(_trimmed(xs[0][i], o, bars[0], zero), g, total, count, zero, one)
        total, count = agreeing(_trimmed(xs[1][i], o, bars[1], zero), g, total, count, zero, one)
        total, count = agreeing(_trimmed(xs[2][i], o, bars[2], zero), g, total, count, zero, one)
        total, count = agreeing(_trimmed(xs[3][i], o, bars[3], zero), g, total, count, zero, one)
        total, count = agreeing(_trimmed(xs[4][i], o, bars[4], zero), g, total, count, zero, one)
        total, count = agreeing(_trimmed(xs[5][i], o, bars[5], zero), g, total, count, zero, one)
        total, count = agreeing(_trimmed(xs[6][i], o, bars[6], zero), g, total, count, zero, one)
        total, count = agreeing(_trimmed(xs[7][i], o, bars[7], zero), g, total, count, zero, one)
        totals[i], counts[i] = total, count


@numba.njit(cache=True)
def _ties(base: np.ndarray, origin: np.ndarray, thetas: Arrays, bars: np.ndarray, mean: bool, scale: float, out: np.ndarray, sums: np.ndarray) -> None:
    """``ties.ties_tensor`` of one flat tensor, BLOCK entries of every task at a time: trim theta_t - origin (|tau| >
    bars[t], a NaN kept), elect gamma = sign(sum_t tau_t) (0 for a zero or NaN sum), sum the products with gamma
    clamped at 0 and count the positive ones, offset by ``base`` (``scaled``)."""
    dtype, width = out.dtype.type, sums.shape[0] // 3
    zero = dtype(0.0)
    for start in range(0, base.shape[0], width):
        stop = min(start + width, base.shape[0])
        n = stop - start
        block, gamma, totals, counts = origin[start:stop], sums[:n], sums[width : width + n], sums[2 * width : 2 * width + n]
        gamma[:], totals[:], counts[:] = zero, zero, zero
        for first in range(0, len(thetas), GROUP):
            _elect_group(_group(thetas, first, start, stop), _bounds(bars, first, dtype), block, gamma)
        _signs(gamma)
        for first in range(0, len(thetas), GROUP):
            _agree_group(_group(thetas, first, start, stop), _bounds(bars, first, dtype), block, gamma, totals, counts)
        scaled(totals, gamma, counts, mean, dtype(scale), base[start:stop], out[start:stop])


@numba.njit(inline="always", cache=True)
def _dropped(theta: np.floating, origin: np.floating, mask: np.floating, divisor: np.floating) -> np.floating:
    """DARE's tau: (theta - origin) * mask / (1 - p)."""
    return (theta - origin) * mask / divisor


@numba.njit(inline="always", cache=True)
def _elect_dropped_group(xs: Arrays, ms: Arrays, divisor: np.floating, origin: np.ndarray, gamma: np.ndarray) -> None:
    """gamma[i] += the group's dropped tau, task after task."""
    for i in range(gamma.shape[0]):
        o, g = origin[i], gamma[i]
        g += _dropped(xs[0][i], o, ms[0][i], divisor)
        g += _dropped(xs[1][i], o, ms[1][i], divisor)
        g += _dropped(xs[2][i], o, ms[2][i], divisor)
        g += _dropped(xs[3][i], o, ms[3][i], divisor)
        g += _dropped(xs[4][i], o, ms[4][i], divisor)
        g += _dropped(xs[5][i], o, ms[5][i], divisor)
        g += _dropped(xs[6][i], o, ms[6][i], divisor)
        g += _dropped(xs[7][i], o, ms[7][i], divisor)
        gamma[i] = g


@numba.njit(inline="always", cache=True)
def _agree_dropped_group(
    xs: Arrays, ms: Arrays, divisor: np.floating, origin: np.ndarray, gamma: np.ndarray, totals: np.ndarray, counts: np.ndarray
) -> None:
    """(totals, counts) after the group's tasks (``agreeing``), the dropped tau made again from the inputs."""
    zero, one = gamma.dtype.type(0.0), gamma.dtype.type(1.0)
    for i in range(gamma.shape[0]):
        o, g, total, count = origin[i], gamma[i], totals[i], counts[i]
        total, count = agreeing(_dropped(xs[0][i], o, ms[0][i], divisor), g, total, count, zero, one)
        total, count = agreeing(_dropped(xs[1][i], o, ms[1][i], divisor), g, total, count, zero, one)
        total, count = agreeing(_dropped(xs[2][i], o, ms[2][i], divisor), g, total, count, zero, one)
        total, count = agreeing(_dropped(xs[3][i], o, ms[3][i], divisor), g, total, count, zero, one)
        total, count = agreeing(_dropped(xs[4][i], o, ms[4][i], divisor), g, total, count, zero, one)
        total, count = agreeing(_dropped(xs[5][i], o, ms[5][i], divisor), g, total, count, zero, one)
        total, count = agreeing(_dropped(xs[6][i], o, ms[6][i], divisor), g, total, count, zero, one)
        total, count = agreeing(_dropped(xs[7][i], o, ms[7][i], divisor), g, total, count, zero, one)
        totals[i], counts[i] = total, count


@numba.njit(inline="always", cache=True)
def _stretch_masks(seed: int, stream: int, task: int, first: int, counters: int, bar: np.float32, masks: np.ndarray) -> None:
    """masks[k * counters + j] = (u > bar) of word k of counter first + j: the four runs of a stretch of draws."""
    dtype = masks.dtype.type
    for j in range(counters):
        masks[j], masks[counters + j], masks[2 * counters + j], masks[3 * counters + j] = keeps(seed, stream, task, first + j, bar, dtype)


@numba.njit(cache=True)
def _dare_ties(
    base: np.ndarray, origin: np.ndarray, thetas: Arrays, tasks: int, seed: int, stream: int, bar: np.float32, keep_scale: float,
    mean: bool, scale: float, out: np.ndarray, masks: Arrays, sums: np.ndarray,
) -> None:
    """``dare.dare_ties_tensor`` of one flat tensor: tau_t = (theta_t - origin) * (u > bar) / (1 - p) for the first
    ``tasks`` of ``thetas`` (the rest are padding: origin, with masks of zeros), elect, disjoint merge, offset by
    ``base``; a stretch of every task's masks at a time (``_stretch_masks``), each of its four runs merged in one
    sweep a group (``sums``: three rows of a stretch's counters)."""
    dtype, stretch = out.dtype.type, masks[0].shape[0] // 4
    divisor, factor, zero = dtype(keep_scale), dtype(scale), dtype(0.0)
    for start in range(0, base.shape[0], 4 * LANES):
        n = min(4 * LANES, base.shape[0] - start)
        w = lanes(n)
        for j0 in range(0, w, stretch):
            counters = min(stretch, w - j0)
            for t in range(tasks):
                _stretch_masks(seed, stream, t, (start >> 2) + j0, counters, bar, masks[t])
            for lane in range(4):
                at, size, row = start + lane * w + j0, max(0, min(counters, n - lane * w - j0)), lane * counters
                gamma, totals, counts = sums[:size], sums[stretch : stretch + size], sums[2 * stretch : 2 * stretch + size]
                gamma[:], totals[:], counts[:] = zero, zero, zero
                for first in range(0, len(thetas), GROUP):
                    xs, ms = _group(thetas, first, at, at + size), _group(masks, first, row, row + size)
                    _elect_dropped_group(xs, ms, divisor, origin[at : at + size], gamma)
                _signs(gamma)
                for first in range(0, len(thetas), GROUP):
                    xs, ms = _group(thetas, first, at, at + size), _group(masks, first, row, row + size)
                    _agree_dropped_group(xs, ms, divisor, origin[at : at + size], gamma, totals, counts)
                scaled(totals, gamma, counts, mean, factor, base[at : at + size], out[at : at + size])


@numba.njit(inline="always", cache=True)
def _inside(magnitude: np.floating, lo: np.floating, hi: np.floating) -> bool:
    """lo <= magnitude <= hi (a NaN is not)."""
    return (magnitude >= lo) & (magnitude <= hi)


@numba.njit(inline="always", cache=True)
def _count_group(xs: Arrays, lo: tuple, hi: tuple, origin: np.ndarray, flags: np.ndarray) -> tuple:
    """Each task's count of |x - origin| < lo over the block, and flags[i] set where some task's magnitude lies in
    its bracket."""
    c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = 0
    for i in range(origin.shape[0]):
        o = origin[i]
        m0, m1, m2, m3 = abs(xs[0][i] - o), abs(xs[1][i] - o), abs(xs[2][i] - o), abs(xs[3][i] - o)
        m4, m5, m6, m7 = abs(xs[4][i] - o), abs(xs[5][i] - o), abs(xs[6][i] - o), abs(xs[7][i] - o)
        c0, c1, c2, c3 = c0 + (m0 < lo[0]), c1 + (m1 < lo[1]), c2 + (m2 < lo[2]), c3 + (m3 < lo[3])
        c4, c5, c6, c7 = c4 + (m4 < lo[4]), c5 + (m5 < lo[5]), c6 + (m6 < lo[6]), c7 + (m7 < lo[7])
        flags[i] |= np.uint8(
            _inside(m0, lo[0], hi[0]) | _inside(m1, lo[1], hi[1]) | _inside(m2, lo[2], hi[2]) | _inside(m3, lo[3], hi[3])
            | _inside(m4, lo[4], hi[4]) | _inside(m5, lo[5], hi[5]) | _inside(m6, lo[6], hi[6]) | _inside(m7, lo[7], hi[7])
        )
    return c0, c1, c2, c3, c4, c5, c6, c7


@numba.njit(inline="always", cache=True)
def _put(row: np.ndarray, filled: int, magnitude: np.floating, lo: np.floating, hi: np.floating) -> int:
    """Write the magnitude at row[filled] (the row's last slot once full) and count it when it lies in the bracket:
    no branch to mispredict."""
    row[min(filled, row.shape[0] - 1)] = magnitude
    return filled + _inside(magnitude, lo, hi)


@numba.njit(inline="always", cache=True)
def _collect_group(xs: Arrays, lo: tuple, hi: tuple, origin: np.ndarray, index: np.ndarray, flagged: int, inside: np.ndarray, filled: np.ndarray, first: int) -> None:
    """Append to the group's rows of ``inside`` the magnitudes in their brackets, over the ``flagged`` entries listed
    in ``index``; ``filled`` counts them (past the row's length when it overflowed)."""
    r0, r1, r2, r3, r4, r5, r6, r7 = _group(inside, first, 0, inside.shape[1])
    f0, f1, f2, f3, f4, f5, f6, f7 = _bounds(filled, first, np.int64)
    for j in range(flagged):
        i = index[j]
        o = origin[i]
        f0, f1 = _put(r0, f0, abs(xs[0][i] - o), lo[0], hi[0]), _put(r1, f1, abs(xs[1][i] - o), lo[1], hi[1])
        f2, f3 = _put(r2, f2, abs(xs[2][i] - o), lo[2], hi[2]), _put(r3, f3, abs(xs[3][i] - o), lo[3], hi[3])
        f4, f5 = _put(r4, f4, abs(xs[4][i] - o), lo[4], hi[4]), _put(r5, f5, abs(xs[5][i] - o), lo[5], hi[5])
        f6, f7 = _put(r6, f6, abs(xs[6][i] - o), lo[6], hi[6]), _put(r7, f7, abs(xs[7][i] - o), lo[7], hi[7])
    filled[first], filled[first + 1], filled[first + 2], filled[first + 3] = f0, f1, f2, f3
    filled[first + 4], filled[first + 5], filled[first + 6], filled[first + 7] = f4, f5, f6, f7


@numba.njit(cache=True)
def _bracket_pass(
    origin: np.ndarray, thetas: Arrays, lo: np.ndarray, hi: np.ndarray, below: np.ndarray, inside: np.ndarray, filled: np.ndarray,
    flags: np.ndarray, index: np.ndarray,
) -> None:
    """For each task t over one flat tensor: below[t] += #{|theta_t - origin| < lo[t]}; the magnitudes in
    [lo[t], hi[t]] (NaN in neither) appended to inside[t] and counted in filled[t].

    A block at a time: one sweep a group counts and flags the entries where some task lies in its
    bracket (about one in ten for eight tasks); their positions are listed, and a second sweep a
    group over those entries alone appends the magnitudes."""
    dtype, width = lo.dtype.type, flags.shape[0]
    for start in range(0, origin.shape[0], width):
        stop = min(start + width, origin.shape[0])
        n = stop - start
        block = origin[start:stop]
        flags[:n] = 0
        for first in range(0, len(thetas), GROUP):
            counts = _count_group(_group(thetas, first, start, stop), _bounds(lo, first, dtype), _bounds(hi, first, dtype), block, flags)
            for k in range(GROUP):
                below[first + k] += counts[k]
        flagged = 0
        for i in range(n):
            index[flagged] = i
            flagged += flags[i] != 0
        for first in range(0, len(thetas), GROUP):
            _collect_group(
                _group(thetas, first, start, stop), _bounds(lo, first, dtype), _bounds(hi, first, dtype), block, index, flagged, inside, filled, first
            )


class BracketCounts:
    """What one joint pass over every task's magnitudes finds for each task's bracket [lo, hi]: how many fall below
    it (``below``), how many inside (``filled``: more than the room when they overflowed) and the first of those
    (``inside``, one row a task). ``add`` takes the tensors one at a time (``_bracket_pass``)."""

    def __init__(self, lo: Sequence[float], hi: Sequence[float], room: int, dtype: np.dtype) -> None:
        self.tasks, pad = len(lo), -len(lo) % GROUP
        self.lo = np.array([*lo, *[-1.0] * pad], dtype=dtype)  # padded tasks' magnitudes are 0: never in [-1, -1]
        self.hi = np.array([*hi, *[-1.0] * pad], dtype=dtype)
        self.counts, self.found = np.zeros(len(self.lo), dtype=np.int64), np.zeros(len(self.lo), dtype=np.int64)
        self.rows = np.empty((len(self.lo), room), dtype=dtype)
        self.flags, self.index = np.zeros(BLOCK, dtype=np.uint8), np.empty(BLOCK, dtype=np.int64)

    @property
    def below(self) -> np.ndarray:
        return self.counts[: self.tasks]

    @property
    def filled(self) -> np.ndarray:
        return self.found[: self.tasks]

    @property
    def inside(self) -> np.ndarray:
        return self.rows[: self.tasks]

    def add(self, origin: torch.Tensor | None, vectors: Sequence[torch.Tensor]) -> None:
        """Count one tensor of every task (``origin`` None: the vectors are task vectors)."""
        source = np.zeros_like(flat(vectors[0])) if origin is None else flat(origin)
        thetas = tuple(flat(v) for v in vectors) + (source,) * (len(self.lo) - self.tasks)
        _bracket_pass(source, thetas, self.lo, self.hi, self.counts, self.rows, self.found, self.flags, self.index)


def ties(base: torch.Tensor, vectors: Sequence[torch.Tensor], below: Sequence[float], mean: bool, scale: float, finetuned: bool) -> torch.Tensor:
    """TIES of one tensor (``ties.ties_tensor``'s arithmetic); ``below`` is each task's largest trimmed magnitude."""
    out, origin = torch.empty(base.shape, dtype=base.dtype), origin_of(base, finetuned)
    pad = -len(vectors) % GROUP
    bars = np.array([*below, *[0.0] * pad], dtype=np.float64)
    sums = np.empty(3 * min(BLOCK, max(base.numel(), 1)), dtype=origin.dtype)
    _ties(flat(base), origin, tuple(flat(v) for v in vectors) + (origin,) * pad, bars, mean, scale, flat(out), sums)
    return out


def dare_ties(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], seed: int, stream: int, bar: float, p: float, mean: bool, scale: float,
    finetuned: bool,
) -> torch.Tensor:
    """DARE + TIES of one tensor, the draws of tensor ``stream`` (``dare.dare_ties_tensor``'s arithmetic)."""
    out, origin, dtype = torch.empty(base.shape, dtype=base.dtype), origin_of(base, finetuned), flat(base).dtype
    pad = -len(vectors) % GROUP
    counters = max(1, min(STRETCH, (base.numel() + 3) // 4))  # a stretch: at most a block's counters
    masks = tuple(np.zeros(4 * counters, dtype=dtype) for _ in range(len(vectors) + pad))  # a padded task's stay 0
    _dare_ties(
        flat(base), origin, tuple(flat(v) for v in vectors) + (origin,) * pad, len(vectors), seed, stream, np.float32(bar), 1.0 - p, mean,
        scale, flat(out), masks, np.empty(3 * counters, dtype=dtype),
    )
    return out
