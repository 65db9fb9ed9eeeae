"""Compiled element-wise kernels (Numba) for the merges whose torch form costs several passes over memory.

Task arithmetic and simple average (``combine``) and DARE's drop-and-rescale (``dare_sum``,
``dare_ties``) are a few operations per entry and task (TIES's are in ``ties_kernels``, which
shares the disjoint merge's steps and the helpers below); as torch calls each is a
pass over a chunk, and DARE's draws alone cost four times the bandwidth floor with torch's
Mersenne Twister. Here a tensor is merged in blocks, every step of a block done while it is in
the cache, in loops the compiler vectorises (measured in docs/performance.md).

The arithmetic is the torch forms', operation for operation and in the same order (float32
stays float32, sums over tasks run from the first task to the last), so the kernels give what
the torch path gives (``tests/test_merge_engine_identity.py`` against naive whole-tensor forms;
``tests/test_merge_kernels.py``); torch's own sum over the task dimension may group the last
entries of a chunk by the CPU's vector width, where the two can differ in the last bit. Kernels
take float32 and float64 tensors on the CPU; other dtypes and devices take the torch path.

DARE's draws come from Philox4x32-10 (``fusionbench.methods.philox``), made where each is used.
"""

from __future__ import annotations

from typing import Sequence

import numba
import numpy as np
import torch

from fusionbench.methods.philox import LANES, keeps, lanes, whole_runs

BLOCK = 2048  # entries of every task per step of TIES and DARE + TIES (four runs of 512 draws): T blocks stay in L2
SUM_BLOCK = 1 << 18  # entries per step of a sum, accumulated in the output: long runs of each input, the block in L2
Arrays = tuple[np.ndarray, ...]  # one flat array a task (a tuple: Numba compiles a version per task count)

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
def _disjoint_merge_block(
    taus: np.ndarray, gamma: np.ndarray, total: np.ndarray, count: np.ndarray, mean: bool, factor: np.floating, base: np.ndarray,
    out: np.ndarray,
) -> None:
    """out = base + factor * disjoint_merge(taus) over one block (``taus``: the tasks' rows of n entries one after
    another, 1-D so that every row is contiguous to the compiler), as ``ties.disjoint_merge`` computes it, from
    ``gamma`` = sum_t tau_t (the caller's): gamma = sign(gamma); sum_t max(tau_t gamma, 0) times gamma, divided
    by the number of positive products (at least 1) when ``mean``; a NaN propagates through every step."""
    dtype, n = taus.dtype.type, out.shape[0]
    for i in range(n):  # torch.sign: 0 for a zero or NaN sum
        gamma[i] = dtype(1.0) if gamma[i] > 0 else (dtype(-1.0) if gamma[i] < 0 else dtype(0.0))
        total[i] = 0.0
        count[i] = 0.0
    for t in range(taus.shape[0] // n):
        row = taus[t * n : (t + 1) * n]
        for i in range(n):
            total[i], count[i] = agreeing(row[i], gamma[i], total[i], count[i], dtype(0.0), dtype(1.0))
    scaled(total, gamma, count, mean, factor, base, out)


@numba.njit(inline="always", cache=True)
def _kept_run(theta: np.ndarray, origin: np.ndarray, sums: np.ndarray, start: int, j: int, m: np.floating) -> None:
    """sums[start + j] += (theta - origin)[start + j] * m."""
    sums[start + j] += (theta[start + j] - origin[start + j]) * m


@numba.njit(inline="always", cache=True)
def _add_kept(theta: np.ndarray, origin: np.ndarray, seed: int, stream: int, task: int, first: int, bar: np.float32, sums: np.ndarray) -> None:
    """sums[i] += (theta[i] - origin[i]) * m_i over one block of draws (``philox``: its counters from ``first``, the
    entries of counter j at j, w + j, 2 w + j, 3 w + j), each draw made where it is used."""
    dtype, n = sums.dtype.type, sums.shape[0]
    w, whole, reached = whole_runs(n, n)
    for j in range(whole):  # four runs: vectorised
        m0, m1, m2, m3 = keeps(seed, stream, task, first + j, bar, dtype)
        _kept_run(theta, origin, sums, 0, j, m0)
        _kept_run(theta, origin, sums, w, j, m1)
        _kept_run(theta, origin, sums, 2 * w, j, m2)
        _kept_run(theta, origin, sums, 3 * w, j, m3)
    for j in range(whole, reached):  # a tensor's last block: at most three counters whose last run ends early
        m = keeps(seed, stream, task, first + j, bar, dtype)
        for lane in range(4):
            if lane * w + j < n:
                _kept_run(theta, origin, sums, lane * w, j, m[lane])


@numba.njit(inline="always", cache=True)
def _stretch_keeps(seed: int, stream: int, task: int, first: int, counters: int, bar: np.float32, masks: np.ndarray) -> None:
    """masks[lane * counters + j] = m of word ``lane`` of counter first + j: a stretch of one block of draws."""
    dtype = masks.dtype.type
    for j in range(counters):
        m0, m1, m2, m3 = keeps(seed, stream, task, first + j, bar, dtype)
        masks[j], masks[counters + j], masks[2 * counters + j], masks[3 * counters + j] = m0, m1, m2, m3


@numba.njit(inline="always", cache=True)
def _dropped(theta: np.ndarray, origin: np.ndarray, masks: np.ndarray, divisor: np.floating, row: np.ndarray, gamma: np.ndarray) -> None:
    """row[i] = (theta[i] - origin[i]) * masks[i] / divisor and gamma[i] += row[i] over one run of a stretch."""
    for i in range(row.shape[0]):
        row[i] = (theta[i] - origin[i]) * masks[i] / divisor
        gamma[i] += row[i]


@numba.njit(cache=True)
def _dare_ties(
    base: np.ndarray, origin: np.ndarray, thetas: Arrays, seed: int, stream: int, bar: np.float32, keep_scale: float, mean: bool,
    scale: float, out: np.ndarray, taus: np.ndarray, sums: np.ndarray,
) -> None:
    """``dare.dare_ties_tensor`` of one flat tensor: (theta_t - origin) * (u > bar) / (1 - p), elect, disjoint merge,
    offset by ``base``; BLOCK // 4 counters of a block of draws at a time (four runs of entries, gathered into one
    row a task and the merged values put back)."""
    dtype, width = taus.dtype.type, taus.shape[0] // len(thetas)
    divisor, factor, stretch = dtype(keep_scale), dtype(scale), width // 4
    runs = np.zeros(8, dtype=np.int64)  # where each run of the stretch starts, then how many of its entries exist
    shifted, merged, masks = np.empty(width, dtype=out.dtype), np.empty(width, dtype=out.dtype), np.empty(width, dtype=out.dtype)
    for start in range(0, base.shape[0], 4 * LANES):
        n = min(4 * LANES, base.shape[0] - start)
        w = lanes(n)
        for j0 in range(0, w, stretch):
            counters = min(stretch, w - j0)
            for lane in range(4):
                runs[lane] = start + lane * w + j0
                runs[4 + lane] = max(0, min(counters, n - lane * w - j0))
            gamma = sums[: 4 * counters]
            gamma[:] = 0.0
            for t in range(len(thetas)):
                row, theta = taus[t * 4 * counters : (t + 1) * 4 * counters], thetas[t]
                _stretch_keeps(seed, stream, t, (start >> 2) + j0, counters, bar, masks)
                for lane in range(4):
                    at, size = runs[lane], runs[4 + lane]
                    part = slice(lane * counters, lane * counters + size)
                    _dropped(theta[at : at + size], origin[at : at + size], masks[part], divisor, row[part], gamma[part])
                    row[lane * counters + size : (lane + 1) * counters] = 0.0  # past the tensor's end: nothing to merge
            for lane in range(4):
                for j in range(runs[4 + lane]):
                    shifted[lane * counters + j] = base[runs[lane] + j]
            _disjoint_merge_block(
                taus[: len(thetas) * 4 * counters], gamma, sums[width : width + 4 * counters], sums[2 * width : 2 * width + 4 * counters],
                mean, factor, shifted[: 4 * counters], merged[: 4 * counters],
            )
            for lane in range(4):
                for j in range(runs[4 + lane]):
                    out[runs[lane] + j] = merged[lane * counters + j]


@numba.njit(cache=True)
def _dare_sum(base: np.ndarray, origin: np.ndarray, thetas: Arrays, seed: int, stream: int, bar: np.float32, factor: float, out: np.ndarray) -> None:
    """``dare.dare_sum_tensor`` of one flat tensor: base + factor * sum_t (theta_t - origin) * (u > bar), the sum
    accumulated in ``out`` a block of draws at a time."""
    scale = out.dtype.type(factor)
    for start in range(0, base.shape[0], 4 * LANES):
        stop = min(start + 4 * LANES, base.shape[0])
        sums, block = out[start:stop], base[start:stop]
        sums[:] = 0.0
        for t in range(len(thetas)):
            _add_kept(thetas[t][start:stop], origin[start:stop], seed, stream, t, start >> 2, bar, sums)
        for i in range(sums.shape[0]):
            sums[i] = sums[i] * scale + block[i]


@numba.njit(cache=True)
def _combine(
    tensors: Arrays, origin: np.ndarray, differences: bool, scale: float, offset: np.ndarray, offsets: bool, out: np.ndarray, width: int
) -> None:
    """``elementwise.combine`` of one flat tensor: out = scale * sum_t (tensors[t] - origin) + offset, the sum from the
    first tensor to the last accumulated in ``out`` ``width`` entries at a time, each step rounded to the dtype (no
    difference without ``differences``, no offset without ``offsets``: adding a zero would turn -0.0 into 0.0)."""
    factor = out.dtype.type(scale)
    for start in range(0, out.shape[0], width):
        stop = min(start + width, out.shape[0])
        sums, block, first = out[start:stop], origin[start:stop], tensors[0][start:stop]
        for i in range(sums.shape[0]):
            sums[i] = first[i] - block[i] if differences else first[i]
        for t in range(1, len(tensors)):
            tensor = tensors[t][start:stop]
            if differences:
                for i in range(sums.shape[0]):
                    sums[i] += tensor[i] - block[i]
            else:
                for i in range(sums.shape[0]):
                    sums[i] += tensor[i]
        shift = offset[start:stop]
        for i in range(sums.shape[0]):
            sums[i] = sums[i] * factor + shift[i] if offsets else sums[i] * factor


def compiled(base: torch.Tensor, vectors: Sequence[torch.Tensor]) -> bool:
    """Whether the kernels take these tensors: float32 or float64 on the CPU, all of one dtype."""
    return base.device.type == "cpu" and base.dtype in (torch.float32, torch.float64) and all(
        v.dtype == base.dtype and v.device.type == "cpu" for v in vectors
    )


def flat(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().reshape(-1).numpy()


def origin_of(base: torch.Tensor, finetuned: bool) -> np.ndarray:
    """What the vectors are taken from: the base for fine-tuned parameters, zeros for task vectors (x - 0 = x)."""
    return flat(base) if finetuned else np.zeros(base.numel(), dtype=flat(base).dtype)


def scratch(base: torch.Tensor, rows: int) -> np.ndarray:
    """``rows`` rows of a block in the tensor's dtype, one after another in one 1-D array."""
    return np.empty(rows * min(BLOCK, max(base.numel(), 1)), dtype=flat(base).dtype)


def combine(
    tensors: Sequence[torch.Tensor], base: torch.Tensor | None, scale: float, offset: torch.Tensor | None
) -> torch.Tensor:
    """scale * sum_t (tensors[t] - base) + offset of one tensor (``elementwise.combine``'s arithmetic)."""
    out = torch.empty(tensors[0].shape, dtype=tensors[0].dtype)
    first = flat(tensors[0])
    _combine(
        tuple(flat(t) for t in tensors), first if base is None else flat(base), base is not None, scale,
        first if offset is None else flat(offset), offset is not None, flat(out), SUM_BLOCK,
    )
    return out


def dare_ties(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], seed: int, stream: int, bar: float, p: float, mean: bool, scale: float,
    finetuned: bool,
) -> torch.Tensor:
    """DARE + TIES of one tensor, the draws of tensor ``stream`` (``dare.dare_ties_tensor``'s arithmetic)."""
    out = torch.empty(base.shape, dtype=base.dtype)
    _dare_ties(
        flat(base), origin_of(base, finetuned), tuple(flat(v) for v in vectors), seed, stream, np.float32(bar), 1.0 - p, mean, scale, flat(out),
        np.empty(len(vectors) * BLOCK, dtype=flat(base).dtype), np.empty(3 * BLOCK, dtype=flat(base).dtype),
    )
    return out


def dare_sum(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], seed: int, stream: int, bar: float, factor: float, finetuned: bool
) -> torch.Tensor:
    """base + factor * sum_t m_t tau_t of one tensor, the draws of tensor ``stream`` (``dare.dare_task_arithmetic``'s)."""
    out = torch.empty(base.shape, dtype=base.dtype)
    _dare_sum(
        flat(base), origin_of(base, finetuned), tuple(flat(v) for v in vectors), seed, stream, np.float32(bar), factor, flat(out),
    )
    return out
