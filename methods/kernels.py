"""Compiled element-wise kernels (Numba) for the merges whose torch form costs several passes over memory.

Task arithmetic and simple average (``combine``) and DARE's drop-and-rescale (``dare_sum``) are a
few operations per entry and task (TIES's and DARE + TIES's are in ``ties_kernels``, which shares
the helpers below); as torch calls each is a
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

from fusionbench.methods.philox import LANES, keeps, whole_runs

SUM_BLOCK = 1 << 18  # entries per step of a sum, accumulated in the output: long runs of each input, the block in L2
Arrays = tuple[np.ndarray, ...]  # one flat array a task (a tuple: Numba compiles a version per task count)


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


def dare_sum(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], seed: int, stream: int, bar: float, factor: float, finetuned: bool
) -> torch.Tensor:
    """base + factor * sum_t m_t tau_t of one tensor, the draws of tensor ``stream`` (``dare.dare_task_arithmetic``'s)."""
    out = torch.empty(base.shape, dtype=base.dtype)
    _dare_sum(
        flat(base), origin_of(base, finetuned), tuple(flat(v) for v in vectors), seed, stream, np.float32(bar), factor, flat(out),
    )
    return out
