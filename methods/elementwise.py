"""The engine of the element-wise merges (simple average, task arithmetic, DARE, TIES's steps).

Memory bandwidth is their floor: a merge of T checkpoints must read T + 1 models and write one.
So each output tensor is accumulated in place, CHUNK entries at a time: for one chunk,
tau_t = theta_t - theta_0 goes to a scratch buffer and is added to the output chunk while both
are in the CPU cache, and no task vector is ever materialised. Differences are taken in the
parameters' dtype and summed in float32 for half types (what ``torch.stack(taus).sum(0)``
does), in the parameters' dtype otherwise.

Finite values cost no pass of their own: a NaN or Inf in any input reaches the output (drops
and trims multiply by a 0/1 mask, and 0 * NaN = NaN), so :func:`finite_or_blame` checks the
output once and, only when it is not finite, finds which input is.
"""

from __future__ import annotations

from typing import Iterator, Optional, Sequence

import torch

from fusionbench.api.errors import NonFiniteError
from fusionbench.api.params import ParamDict

CHUNK = 1 << 16  # entries per step: a chunk of each operand stays in the L2 cache


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types, the dtype itself otherwise."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def chunks(numel: int, size: int = CHUNK) -> Iterator[slice]:
    """Consecutive slices of at most ``size`` entries covering ``numel`` entries."""
    return (slice(start, min(start + size, numel)) for start in range(0, numel, size))


def task_vector_chunk(out: torch.Tensor, flat: torch.Tensor, flat_base: Optional[torch.Tensor], part: slice) -> torch.Tensor:
    """``out = flat[part] - flat_base[part]`` (``flat[part]`` when there is no base), written into ``out``."""
    if flat_base is None:
        return out.copy_(flat[part])
    return torch.sub(flat[part], flat_base[part], out=out)


def sum_of_differences(thetas: Sequence[torch.Tensor], base: Optional[torch.Tensor]) -> torch.Tensor:
    """sum_t (thetas[t] - base) of one tensor (sum_t thetas[t] when ``base`` is None), in the accumulation dtype."""
    dtype = thetas[0].dtype
    out = torch.zeros(thetas[0].shape, dtype=accumulation_dtype(dtype))
    flat_out, flat_base = out.view(-1), None if base is None else base.reshape(-1)
    flats = [theta.reshape(-1) for theta in thetas]
    scratch = torch.empty(min(CHUNK, out.numel()), dtype=dtype)
    for part in chunks(out.numel()):
        target, tau = flat_out[part], scratch[: part.stop - part.start]
        for flat in flats:
            target.add_(task_vector_chunk(tau, flat, flat_base, part))
    return out


def task_arithmetic_tensor(base: torch.Tensor, thetas: Sequence[torch.Tensor], scaling_factor: float, differences: bool = True) -> torch.Tensor:
    """theta_0 + lambda * sum_t (theta_t - theta_0) of one tensor (theta_0 + lambda * sum_t thetas[t] with ``differences=False``)."""
    merged = sum_of_differences(thetas, base if differences else None).to(base.dtype)
    return merged.mul_(scaling_factor).add_(base)


def finite_or_blame(merged: ParamDict, thetas: Sequence[ParamDict], tasks: Sequence[str], base: Optional[ParamDict] = None) -> ParamDict:
    """``merged`` when it is finite; else the NonFiniteError of the first input that is not (tasks, then the base).

    When every input is finite the merged parameters are returned as they are: the engine's
    checked merge names the method that produced the NaN or Inf.
    """
    try:
        merged.assert_finite()
    except NonFiniteError:
        for task, theta in zip(tasks, thetas):
            theta.assert_finite(f"fine-tuned parameters of task {task!r}")
        if base is not None:
            base.assert_finite("base parameters")
    return merged
