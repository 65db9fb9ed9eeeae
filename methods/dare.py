"""DARE: Drop And REscale (Yu et al., "Language Models are Super Mario", ICML 2024).

Each task-vector entry is dropped with probability p (Bernoulli mask) and the survivors
are rescaled by 1 / (1 - p), so every entry keeps its expectation:
tau'_t = m_t * tau_t / (1 - p), m_t ~ Bernoulli(1 - p). The tau'_t are then merged by
``base_method="task_arithmetic"`` (theta_0 + lambda * sum_t tau'_t) or ``base_method="ties"`` (sign
election and disjoint merge of the tau'_t; DARE replaces TIES's magnitude trim, as in
peft's ``dare_ties``).

Each draw u ~ U[0, 1) is a float32 from Philox4x32-10 keyed by ``seed`` (``fusionbench.methods.philox``,
version 4): the draw of an entry is a function of (seed, task's place in the pool, tensor's place
in key order, entry's place in the tensor and the tensor's size), made where it is used and never
stored. Version 3 gave a counter's four words to four neighbouring entries, version 4 to four runs of
a block (the same draws' distribution, other masks). Results are
reproducible per seed whatever the dtype, device or chunking, and the global RNG is never
touched. Versions 1-2 drew from
one ``torch.Generator`` in the order (task, tensor, entry): four times the bandwidth floor for
the draws alone (docs/performance.md), other masks, the same distribution. An entry is kept when
its draw u > p (``strict=True``: the official code's ``rand > p``, the default since version 2)
or u >= p (``strict=False``, version 1); they differ only where u equals p exactly, and with
p = 0 strict drops the rare draws u = 0 (2^-24 of the entries), as the official code does.
Defaults: p = 0.5, base_method task_arithmetic, lambda = the base method's default (0.3 for task
arithmetic, 1.0 for TIES), merge_func mean, seed 0, strict. Task arithmetic: theta_0 +
(lambda / (1 - p)) * sum_t m_t tau_t, the sum over tasks in pool order (in float32 for half
types). TIES: tau'_t = m_t tau_t / (1 - p), then sign election and disjoint merge. Each tensor is
merged block by block, all tasks at once, in one compiled pass for float32 / float64 on the CPU
(``kernels``), chunk by chunk with torch otherwise, with the same arithmetic; no dropped task
vector is stored.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods import kernels, philox, ties_kernels
from fusionbench.methods.common import check_choice, load_inputs
from fusionbench.methods.elementwise import CHUNK, Workspace, accumulation_dtype, chunks, finite_or_blame, task_vector_chunk
from fusionbench.methods.ties import BASE_METHODS, MERGE_FUNCS, base_scaling, disjoint_merge


def keep_mask(seed: int, task: int, stream: int, start: int, count: int, size: int, p: float, strict: bool = True) -> torch.Tensor:
    """Entries start .. start + count - 1 of tensor ``stream`` (``size`` entries) of task ``task``: 1.0 where the draw
    u > p (``strict``) or u >= p, else 0.0, in float32 on the CPU (u >= p is u > the float below p); ``start`` a
    multiple of 4 ``philox.LANES``."""
    return philox.uniforms(seed, task, stream, start, count, size).gt_(_bar(p, strict))


@functools.lru_cache(maxsize=8)
def _bar(p: float, strict: bool) -> torch.Tensor:
    """The float32 value a draw must exceed: p, or for u >= p the float just below p (made once: read, never written)."""
    bar = torch.tensor(p, dtype=torch.float32)
    return bar if strict else torch.nextafter(bar, torch.tensor(-1.0))


def drop_and_rescale_(tensor: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """In place: entries where ``keep`` is 0 become 0 (a NaN stays NaN); the others are divided by (1 - p)."""
    return tensor.mul_(keep.to(tensor.device)).div_(1.0 - p)


def dare_sum_tensor(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], p: float, seed: int, strict: bool, stream: int, scaling_factor: float,
    finetuned: bool, workspace: Optional[Workspace] = None,
) -> torch.Tensor:
    """theta_0 + (lambda / (1 - p)) * sum_t m_t tau_t of tensor ``stream``: one compiled pass, or chunk by chunk (the
    sum in the accumulation dtype, rounded to the tensors' dtype, scaled and offset there)."""
    factor = scaling_factor / (1.0 - p)
    if kernels.compiled(base, vectors):
        return kernels.dare_sum(base, vectors, seed, stream, float(_bar(p, strict)), factor, finetuned)
    workspace = Workspace() if workspace is None else workspace
    flat_base, flats = base.reshape(-1), [vector.reshape(-1) for vector in vectors]
    merged = torch.empty(base.numel(), dtype=base.dtype, device=base.device)
    width = min(merged.numel(), CHUNK)
    total = workspace.get("sum", (width,), accumulation_dtype(base.dtype), base.device)
    scratch = workspace.get("tau", (width,), base.dtype, base.device)
    for part in chunks(merged.numel()):
        n = part.stop - part.start
        total[:n].zero_()
        for task, flat in enumerate(flats):
            tau = task_vector_chunk(scratch[:n], flat, flat_base if finetuned else None, part)
            total[:n].add_(tau.mul_(keep_mask(seed, task, stream, part.start, n, merged.numel(), p, strict).to(tau.device)))
        merged[part].copy_(total[:n]).mul_(factor).add_(flat_base[part])
    return merged.view(base.shape)


def dare_ties_tensor(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], p: float, seed: int, strict: bool, stream: int, scaling_factor: float,
    merge_func: str, finetuned: bool, workspace: Optional[Workspace] = None,
) -> torch.Tensor:
    """theta_0 + lambda * disjoint_merge(drop_and_rescale(tau_t)) of tensor ``stream``: one compiled pass, or chunk by
    chunk with torch."""
    if kernels.compiled(base, vectors):
        return ties_kernels.dare_ties(base, vectors, seed, stream, float(_bar(p, strict)), p, merge_func == "mean", scaling_factor, finetuned)
    workspace = Workspace() if workspace is None else workspace
    flat_base, flats = base.reshape(-1), [vector.reshape(-1) for vector in vectors]
    merged = torch.empty(base.numel(), dtype=base.dtype, device=base.device)
    width = min(merged.numel(), CHUNK)
    stack, scratch = (workspace.get(role, (len(vectors), width), base.dtype, base.device) for role in ("taus", "products"))
    for part in chunks(merged.numel()):
        n = part.stop - part.start
        taus = stack[:, :n]
        for task, (tau, flat) in enumerate(zip(taus, flats)):
            task_vector_chunk(tau, flat, flat_base if finetuned else None, part)
            drop_and_rescale_(tau, keep_mask(seed, task, stream, part.start, n, merged.numel(), p, strict), p)
        disjoint_merge(taus, merge_func, merged[part], scratch[:, :n]).mul_(scaling_factor).add_(flat_base[part])
    return merged.view(base.shape)


def dare_merge(
    base: ParamDict,
    vectors: Sequence[ParamDict],
    p: float,
    seed: int,
    base_method: str = "task_arithmetic",
    scaling_factor: float = 0.3,
    merge_func: str = "mean",
    strict: bool = True,
    finetuned: bool = False,
) -> ParamDict:
    """Drop-and-rescale every task vector, then merge with task arithmetic or TIES (k = 1: sign election and
    disjoint merge), tensor by tensor. With ``finetuned`` the vectors are the theta_t; no dropped task vector is stored."""
    workspace, merged = Workspace(), ParamDict()
    for stream, (name, tensor) in enumerate(base.items()):
        tensors = [vector[name] for vector in vectors]
        if base_method == "task_arithmetic":
            merged[name] = dare_sum_tensor(tensor, tensors, p, seed, strict, stream, scaling_factor, finetuned, workspace)
        else:
            merged[name] = dare_ties_tensor(tensor, tensors, p, seed, strict, stream, scaling_factor, merge_func, finetuned, workspace)
    return merged


@dataclass
class DareParams:
    p: float = param(0.5, "probability of dropping each task-vector entry, in [0, 1)")
    base_method: str = param("task_arithmetic", "merge applied after dropping: task_arithmetic or ties")
    scaling_factor: Optional[float] = param(None, "lambda; null: the base method's default (0.3 / 1.0)")
    merge_func: str = param("mean", "with base_method=ties: disjoint merge divisor, mean or sum")
    seed: int = param(0, "key of the drop masks' Philox4x32-10 draws")
    strict: bool = param(True, "keep an entry when u > p (true, the official code) or u >= p (false); u drawn in float32")


class Dare(Method):
    """Random drop with rescaling, then task arithmetic or TIES."""

    name = "dare"
    description = "DARE: drop task-vector entries with prob. p, rescale by 1/(1-p), then TA or TIES"
    reference = "Yu et al., Language Models are Super Mario, ICML 2024 (arXiv 2311.03099)"
    version = "4"
    Params = DareParams
    grid = {"p": [0.1, 0.5, 0.9], "scaling_factor": [0.1, 0.3, 0.5, 0.7, 1.0]}

    def validate(self) -> None:
        check_range(self.name, "p", self.params.p, 0.0, 1.0, high_open=True)
        check_choice(self.name, "base_method", self.params.base_method, BASE_METHODS)
        check_choice(self.name, "merge_func", self.params.merge_func, MERGE_FUNCS)
        check_range(self.name, "seed", self.params.seed, 0, 2**63 - 1)
        if self.params.scaling_factor is not None:
            check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, thetas = load_inputs(self, pool, finite=False)
        p = self.params
        scaling = base_scaling(p.base_method, p.scaling_factor)
        merged = dare_merge(base, thetas, p.p, p.seed, p.base_method, scaling, p.merge_func, p.strict, finetuned=True)
        return finite_or_blame(merged, thetas, pool.tasks, base)
