"""The engine of the element-wise merges (simple average, task arithmetic, DARE, TIES's steps).

Memory bandwidth is their floor: a merge of T checkpoints must read T + 1 models and write one.
So each output tensor is accumulated in place, CHUNK entries at a time (:func:`combine`): for
one chunk, tau_t = theta_t - theta_0 goes to a scratch buffer and is added to the output chunk
while both are in the CPU cache, then the chunk is scaled and offset there; no task vector is
ever materialised. Differences are taken in the parameters' dtype and summed in float32 for half
types (what ``torch.stack(taus).sum(0)`` does), in the parameters' dtype otherwise. DARE and
TIES run their own chunk loops on the same pieces (:func:`chunks`, :func:`task_vector_chunk`).

Finite values cost no pass of their own: a NaN or Inf in any input reaches the output (drops
and trims multiply by a 0/1 mask, and 0 * NaN = NaN), so :func:`finite_or_blame` checks the
output once (one sum per tensor, ``ParamDict.assert_finite``) and, only when it is not finite,
finds which input is. Measured against the floor in docs/performance.md.
"""

from __future__ import annotations

import math
from typing import Iterator, Optional, Sequence

import torch

from fusionbench.api.errors import NonFiniteError
from fusionbench.api.params import ParamDict
from fusionbench.methods import kernels

CHUNK = 1 << 16  # entries per step: a chunk of each operand stays in the L2 cache


class Workspace:
    """Scratch tensors reused from one tensor of a merge to the next, by role, dtype and device, each grown to the
    largest request: a buffer allocated afresh for every tensor pays its page faults again."""

    def __init__(self) -> None:
        self._held: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}

    def get(self, role: str, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A contiguous tensor of ``shape`` from ``role``'s buffer; its contents are undefined."""
        size, key = math.prod(shape), (role, dtype, device)
        held = self._held.get(key)
        if held is None or held.numel() < size:
            held = self._held[key] = torch.empty(size, dtype=dtype, device=device)
        return held[:size].view(shape)


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


def combine(
    tensors: Sequence[torch.Tensor], base: Optional[torch.Tensor] = None, scale: float = 1.0, offset: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """``scale * sum_t (tensors[t] - base) + offset`` of one tensor (no difference without ``base``, no offset without ``offset``).

    Chunk by chunk: the sum is accumulated in the accumulation dtype and rounded to the tensors'
    dtype, then scaled and offset there while the chunk is in the cache, which is what
    ``torch.stack(taus).sum(0)`` followed by tensor arithmetic computes; float32 and float64 on the CPU
    in one compiled pass (``kernels.combine``, the same arithmetic).
    """
    if kernels.compiled(tensors[0], [*tensors, *(t for t in (base, offset) if t is not None)]):
        return kernels.combine(tensors, base, scale, offset)
    dtype = tensors[0].dtype
    out = torch.empty(tensors[0].shape, dtype=dtype, device=tensors[0].device)
    flat_out, numel = out.view(-1), out.numel()
    flat_base = None if base is None else base.reshape(-1)
    flat_offset = None if offset is None else offset.reshape(-1)
    flats = [tensor.reshape(-1) for tensor in tensors]
    width = min(CHUNK, numel)
    scratch = torch.empty(width, dtype=dtype, device=out.device)
    wide = torch.empty(width, dtype=accumulation_dtype(dtype), device=out.device) if accumulation_dtype(dtype) != dtype else None
    for part in chunks(numel):
        n = part.stop - part.start
        target = flat_out[part] if wide is None else wide[:n]
        theta_0 = None if flat_base is None else flat_base[part]
        for index, flat in enumerate(flats):
            if theta_0 is None:
                tau = flat[part]
            else:  # the first difference straight into the output when the dtypes allow
                tau = torch.sub(flat[part], theta_0, out=target if index == 0 and wide is None else scratch[:n])
            if tau is target:
                continue
            if index == 0:
                target.copy_(tau)
            else:
                target.add_(tau)
        if wide is not None:
            flat_out[part].copy_(target)
        if scale != 1.0:
            flat_out[part].mul_(scale)
        if flat_offset is not None:
            flat_out[part].add_(flat_offset[part])
    return out


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
