"""TIES-Merging (Yadav et al., "TIES-Merging: Resolving Interference When Merging Models", NeurIPS 2023).

1. Trim: keep the top-k fraction of each task vector's entries by magnitude; the
   threshold is taken over the whole flattened task vector (not per tensor), entries at
   least that large are kept. ``keep="kthvalue"`` (the official code's convention, the
   default since version 2): the threshold is the (N - int(k N))-th smallest |entry| of the
   N entries (``torch.kthvalue``), so int(k N) + 1 entries are kept, and every entry at
   k = 1 (where the official code raises). ``keep="topk"`` (peft's, version 1): the
   int(k N)-th largest |entry|, int(k N) entries kept (none when int(k N) = 0). Entries
   tied with the threshold are kept either way.
2. Elect: gamma = sign(sum_t trimmed tau_t) (total mass); an entry whose mass is exactly
   zero elects no sign and merges to 0.
3. Disjoint merge of the trimmed entries whose sign equals gamma (zeros excluded):
   ``merge_func="mean"`` divides by the number of agreeing entries, at least 1 (paper,
   peft's ``disjoint_merge``); ``merge_func="sum"`` does not divide (the original
   FusionBench convention).
4. theta = theta_0 + lambda * merged.

Defaults: k = 0.2 and lambda = 1.0 (the paper's settings without validation data), mean,
kthvalue. Grid: k, lambda in {0.25, 0.5, 0.75, 1.0} (L-LoRA paper). Every task's threshold is
found exactly in one joint pass over the task vectors, none of them stored
(``fusionbench.methods.selection``); steps 1-4 then run in one compiled pass a tensor for float32 /
float64 on the CPU (``fusionbench.methods.ties_kernels``), chunk by chunk with torch otherwise, all tasks
at once, with the same arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods import kernels, ties_kernels
from fusionbench.methods.common import check_choice, load_inputs
from fusionbench.methods.elementwise import CHUNK, Workspace, chunks, finite_or_blame, task_vector_chunk
from fusionbench.methods.selection import kth_smallest_magnitude  # noqa: F401 (re-exported: the threshold's select)
from fusionbench.methods.selection import kth_smallest_magnitudes, magnitude_dtype
from fusionbench.methods.task_arithmetic import TaskArithmeticParams

MERGE_FUNCS = ("mean", "sum")
KEEP_RULES = ("kthvalue", "topk")
BASE_METHODS = ("task_arithmetic", "ties")  # the merges DARE, AWD, Consensus and KnOTS apply to the vectors they make


def trim_thresholds(vectors: Sequence[ParamDict], k: float, keep: str = "kthvalue", origin: Optional[ParamDict] = None) -> list[float]:
    """The magnitude an entry of each vector needs to survive the trim (inf when none does); see the module docstring."""
    total = sum(t.numel() for t in vectors[0].values())
    kept = int(k * total)
    if keep == "kthvalue":
        return kth_smallest_magnitudes(vectors, [max(1, total - kept)] * len(vectors), origin)
    return kth_smallest_magnitudes(vectors, [total - kept + 1] * len(vectors), origin) if kept else [float("inf")] * len(vectors)


def disjoint_merge(
    taus: torch.Tensor, merge_func: str = "mean", out: Optional[torch.Tensor] = None, scratch: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """Elect gamma = sign(sum_t taus[t]) and merge over dim 0 the entries whose sign agrees with it: their
    mean ("mean", over at least 1) or sum ("sum"). ``out`` (one entry per column) and ``scratch``
    (the shape of ``taus``) are reused when given.

    Floating-point arithmetic only (boolean masks cost several times more): an entry agrees when
    tau * gamma > 0, and the agreeing entries sum to gamma * sum_t max(tau_t * gamma, 0) exactly
    (negation commutes with rounding). A NaN or Inf entry reaches the result.
    """
    out = torch.empty(taus.shape[1:], dtype=taus.dtype, device=taus.device) if out is None else out
    products = torch.empty_like(taus) if scratch is None else scratch
    gamma = torch.sign(torch.sum(taus, dim=0))
    for product, tau in zip(products, taus):  # row by row: a broadcast product costs twice as much
        torch.mul(tau, gamma, out=product)
    torch.sum(products.clamp_(min=0), dim=0, out=out).mul_(gamma)
    if merge_func == "mean":
        out.div_(torch.sum(products.gt_(0), dim=0).clamp_(min=1))
    return out


def ties_tensor(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], thresholds: torch.Tensor, scaling_factor: float,
    merge_func: str, finetuned: bool, workspace: Optional[Workspace] = None,
) -> torch.Tensor:
    """theta_0 + lambda * disjoint_merge(trim(tau_t)) of one tensor: one compiled pass for float32 / float64 on the CPU
    (``ties_kernels.ties``, the same arithmetic), else CHUNK columns of all tasks at a time, in buffers reused from
    ``workspace``, every step of a chunk while it is in the cache.

    ``thresholds`` holds one trim threshold per task, shape (T, 1), in the magnitude dtype. The trim
    keeps |tau| > ``below``, the next float under the threshold: ``torch.hardshrink`` in place
    (a NaN stays NaN) when the tensors have the magnitude dtype; for half types, whose
    hardshrink would round ``below`` to their precision, tau times (|tau| > below) in the magnitude dtype.
    """
    thresholds = thresholds.to(base.device)
    below = torch.nextafter(thresholds, torch.full_like(thresholds, -float("inf")))
    if kernels.compiled(base, vectors) and thresholds.dtype == base.dtype:
        return ties_kernels.ties(base, vectors, [float(value) for value in below[:, 0]], merge_func == "mean", scaling_factor, finetuned)
    workspace = Workspace() if workspace is None else workspace
    shrink = [float(value) for value in below[:, 0]] if thresholds.dtype == base.dtype else None
    flat_base, flats = base.reshape(-1), [vector.reshape(-1) for vector in vectors]
    merged = torch.empty(base.numel(), dtype=base.dtype, device=base.device)
    width = min(merged.numel(), CHUNK)
    stack, scratch = (workspace.get(role, (len(vectors), width), base.dtype, base.device) for role in ("taus", "products"))
    for part in chunks(merged.numel()):
        n = part.stop - part.start
        taus = stack[:, :n]
        for index, (tau, flat) in enumerate(zip(taus, flats)):
            task_vector_chunk(tau, flat, flat_base if finetuned else None, part)
            if shrink is not None:
                torch.hardshrink(tau, shrink[index], out=tau)
        if shrink is None:
            keep = workspace.get("keep", (len(vectors), width), thresholds.dtype, base.device)[:, :n]
            taus.mul_(keep.copy_(taus).abs_().gt_(below))
        disjoint_merge(taus, merge_func, merged[part], scratch[:, :n]).mul_(scaling_factor).add_(flat_base[part])
    return merged.view(base.shape)


def ties_merge(
    base: ParamDict, vectors: Sequence[ParamDict], k: float, scaling_factor: float, merge_func: str = "mean",
    keep: str = "kthvalue", finetuned: bool = False,
) -> ParamDict:
    """theta_0 + lambda * disjoint_merge(trim_k(tau_t)); with ``finetuned`` the vectors are the theta_t
    and tau_t = theta_t - theta_0 is taken chunk by chunk, never stored."""
    origin = base if finetuned else None
    dtype = magnitude_dtype(vectors[0])
    thresholds = torch.tensor([[value] for value in trim_thresholds(vectors, k, keep, origin)], dtype=dtype)
    workspace = Workspace()
    return ParamDict(
        {
            name: ties_tensor(tensor, [vector[name] for vector in vectors], thresholds, scaling_factor, merge_func, finetuned, workspace)
            for name, tensor in base.items()
        }
    )


@dataclass
class TiesParams:
    k: float = param(0.2, "fraction of each task vector's entries kept by magnitude, in (0, 1]")
    scaling_factor: float = param(1.0, "lambda, the weight of the merged task vector")
    merge_func: str = param("mean", "disjoint merge divisor: mean (by agreeing entries) or sum (none)")
    keep: str = param("kthvalue", "trim rule: kthvalue (|tau| >= kthvalue threshold, int(kN)+1 kept, official) or topk (int(kN) kept)")


def base_scaling(base_method: str, scaling_factor: Optional[float]) -> float:
    """lambda: ``scaling_factor``, or when it is None the base method's default (task arithmetic 0.3, TIES 1.0)."""
    if scaling_factor is not None:
        return scaling_factor
    return TiesParams().scaling_factor if base_method == "ties" else TaskArithmeticParams().scaling_factor


def check_base_method(
    method: str, base_method: str, scaling_factor: Optional[float], fraction: tuple[str, float], merge_func: str, keep: str
) -> None:
    """ConfigError unless a method's base-method parameters are valid: ``base_method``, ``scaling_factor`` (None or in
    [-10, 10]), the TIES trim fraction ``fraction`` = (its parameter name, value) in (0, 1], ``merge_func`` and ``keep``."""
    check_choice(method, "base_method", base_method, BASE_METHODS)
    if scaling_factor is not None:
        check_range(method, "scaling_factor", scaling_factor, -10.0, 10.0)
    check_range(method, fraction[0], fraction[1], 0.0, 1.0, low_open=True)
    check_choice(method, "merge_func", merge_func, MERGE_FUNCS)
    check_choice(method, "keep", keep, KEEP_RULES)


class Ties(Method):
    """Trim, elect sign, disjoint merge."""

    name = "ties"
    description = "TIES-Merging: trim to top-k, elect signs by mass, disjoint merge, scale"
    reference = "Yadav et al., TIES-Merging, NeurIPS 2023 (arXiv 2306.01708)"
    version = "2"
    Params = TiesParams
    grid = {"k": [0.25, 0.5, 0.75, 1.0], "scaling_factor": [0.25, 0.5, 0.75, 1.0]}

    def validate(self) -> None:
        check_range(self.name, "k", self.params.k, 0.0, 1.0, low_open=True)
        check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)
        check_choice(self.name, "merge_func", self.params.merge_func, MERGE_FUNCS)
        check_choice(self.name, "keep", self.params.keep, KEEP_RULES)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, thetas = load_inputs(self, pool, finite=False)
        p = self.params
        merged = ties_merge(base, thetas, p.k, p.scaling_factor, p.merge_func, p.keep, finetuned=True)
        return finite_or_blame(merged, thetas, pool.tasks, base)
