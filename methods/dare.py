"""DARE: Drop And REscale (Yu et al., "Language Models are Super Mario", ICML 2024).

Each task-vector entry is dropped with probability p (Bernoulli mask) and the survivors
are rescaled by 1 / (1 - p), so every entry keeps its expectation:
tau'_t = m_t * tau_t / (1 - p), m_t ~ Bernoulli(1 - p). The tau'_t are then merged by
``base_method="task_arithmetic"`` (theta_0 + lambda * sum_t tau'_t) or ``base_method="ties"`` (sign
election and disjoint merge of the tau'_t; DARE replaces TIES's magnitude trim, as in
peft's ``dare_ties``).

Masks come from one ``torch.Generator`` seeded with ``seed``, drawn on the CPU in float32
(whatever the parameters' dtype) task by task (pool order) and tensor by tensor (key order):
results are reproducible per seed, identical across devices, and the global RNG is never
touched. An entry is kept when its draw u > p (``strict=True``: the official code's
``rand > p``, the default since version 2) or u >= p (``strict=False``, version 1); they
differ only where u equals p exactly, and with p = 0 strict drops the rare draws u = 0 (2^-24
of the entries), as the official code does.
Defaults: p = 0.5, base_method task_arithmetic, lambda = the base method's default (0.3 for task
arithmetic, 1.0 for TIES), merge_func mean, seed 0, strict. No dropped task vector is stored
(``fusionbench.methods.elementwise``): with task arithmetic they are summed in place, chunk by
chunk, the draws used as they are made; with TIES the masks are drawn first, in the same
order, and kept 8 to a byte (one byte an entry for eight tasks), then each tensor is merged
chunk by chunk from every task at once.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import check_choice, load_inputs
from fusionbench.methods.elementwise import CHUNK, Workspace, accumulation_dtype, chunks, finite_or_blame, task_vector_chunk
from fusionbench.methods.ties import BASE_METHODS, MERGE_FUNCS, base_scaling, disjoint_merge


def keep_mask(count: int, p: float, generator: torch.Generator, strict: bool = True, out: Optional[torch.Tensor] = None) -> torch.Tensor:
    """``count`` entries, 1.0 where u > p (``strict``) or u >= p, else 0.0; u ~ U[0, 1) drawn in float32 on the CPU.

    One in-place comparison with p in float32 (u >= p is u > the float below p): a float mask,
    several times cheaper to apply than a boolean one.
    """
    draws = torch.rand(count, generator=generator, dtype=torch.float32, out=out)
    return draws.gt_(_bar(p, strict))


@functools.lru_cache(maxsize=8)
def _bar(p: float, strict: bool) -> torch.Tensor:
    """The float32 value a draw must exceed: p, or for u >= p the float just below p (made once: read, never written)."""
    bar = torch.tensor(p, dtype=torch.float32)
    return bar if strict else torch.nextafter(bar, torch.tensor(-1.0))


def drop_and_rescale_(tensor: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """In place: entries where ``keep`` is 0 become 0 (a NaN stays NaN); the others are divided by (1 - p)."""
    return tensor.mul_(keep.to(tensor.device)).div_(1.0 - p)


def dare_task_arithmetic(
    base: ParamDict, vectors: Sequence[ParamDict], p: float, seed: int, strict: bool, scaling_factor: float, finetuned: bool
) -> ParamDict:
    """theta_0 + lambda * sum_t m_t * tau_t / (1 - p), accumulated in place in the masks' draw order (task, tensor,
    chunk); the last task's chunk is rounded, scaled and offset while it is in the cache."""
    generator, draws = torch.Generator().manual_seed(seed), torch.empty(CHUNK, dtype=torch.float32)
    sums = {name: torch.zeros(tensor.shape, dtype=accumulation_dtype(tensor.dtype), device=tensor.device) for name, tensor in base.items()}
    merged = {name: sums[name] if sums[name].dtype == tensor.dtype else torch.empty_like(tensor) for name, tensor in base.items()}
    workspace = Workspace()
    for index, vector in enumerate(vectors):
        for name, total in sums.items():
            flat, target, flat_base = vector[name].reshape(-1), total.view(-1), base[name].reshape(-1)
            scratch = workspace.get("tau", (min(CHUNK, flat.numel()),), flat.dtype, flat.device)
            for part in chunks(flat.numel()):
                n = part.stop - part.start
                keep = keep_mask(n, p, generator, strict, draws[:n])
                tau = task_vector_chunk(scratch[:n], flat, flat_base if finetuned else None, part)
                target[part].add_(tau.mul_(keep.to(tau.device)), alpha=1.0 / (1.0 - p))
                if index == len(vectors) - 1:  # what sums.to(dtype) * lambda + theta_0 gives, chunk by chunk
                    merged[name].view(-1)[part].copy_(target[part]).mul_(scaling_factor).add_(flat_base[part])
    return ParamDict({name: merged[name] for name in base})


def _packed_masks(base: ParamDict, tasks: int, p: float, seed: int, strict: bool) -> list[dict[str, np.ndarray]]:
    """Every task's keep masks, drawn in the draw order (task, tensor, chunk) and stored 8 to a byte (one byte an
    entry for eight tasks): what DARE + TIES, merging all tasks chunk by chunk, reads back."""
    generator, draws = torch.Generator().manual_seed(seed), torch.empty(CHUNK, dtype=torch.float32)
    bar, kept = _bar(p, strict).numpy(), np.empty(CHUNK, dtype=bool)
    masks: list[dict[str, np.ndarray]] = []
    for _ in range(tasks):
        masks.append({})
        for name, tensor in base.items():
            packed = masks[-1][name] = np.empty((tensor.numel() + 7) // 8, dtype=np.uint8)
            for part in chunks(tensor.numel()):
                n = part.stop - part.start
                torch.rand(n, generator=generator, dtype=torch.float32, out=draws[:n])
                np.greater(draws[:n].numpy(), bar, out=kept[:n])
                packed[part.start // 8 : (part.stop + 7) // 8] = np.packbits(kept[:n])
    return masks


def dare_ties_tensor(
    base: torch.Tensor, vectors: Sequence[torch.Tensor], masks: Sequence[np.ndarray], p: float,
    scaling_factor: float, merge_func: str, finetuned: bool, workspace: Optional[Workspace] = None,
) -> torch.Tensor:
    """theta_0 + lambda * disjoint_merge(drop_and_rescale(tau_t)) of one tensor, chunk by chunk; task t's
    keep mask is unpacked from ``masks[t]`` (:func:`_packed_masks`)."""
    workspace = Workspace() if workspace is None else workspace
    flat_base, flats = base.reshape(-1), [vector.reshape(-1) for vector in vectors]
    merged = torch.empty(base.numel(), dtype=base.dtype, device=base.device)
    width = min(merged.numel(), CHUNK)
    stack, scratch = (workspace.get(role, (len(vectors), width), base.dtype, base.device) for role in ("taus", "products"))
    keep = workspace.get("keep", (width,), torch.float32, torch.device("cpu"))
    for part in chunks(merged.numel()):
        n = part.stop - part.start
        taus = stack[:, :n]
        for tau, flat, packed in zip(taus, flats, masks):
            task_vector_chunk(tau, flat, flat_base if finetuned else None, part)
            bits = np.unpackbits(packed[part.start // 8 : (part.stop + 7) // 8], count=n)
            drop_and_rescale_(tau, keep[:n].copy_(torch.from_numpy(bits)), p)
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
    disjoint merge). With ``finetuned`` the vectors are the theta_t; no dropped task vector is stored."""
    if base_method == "task_arithmetic":
        return dare_task_arithmetic(base, vectors, p, seed, strict, scaling_factor, finetuned)
    masks, workspace = _packed_masks(base, len(vectors), p, seed, strict), Workspace()
    return ParamDict(
        {
            name: dare_ties_tensor(
                tensor, [vector[name] for vector in vectors], [task[name] for task in masks], p, scaling_factor,
                merge_func, finetuned, workspace,
            )
            for name, tensor in base.items()
        }
    )


@dataclass
class DareParams:
    p: float = param(0.5, "probability of dropping each task-vector entry, in [0, 1)")
    base_method: str = param("task_arithmetic", "merge applied after dropping: task_arithmetic or ties")
    scaling_factor: Optional[float] = param(None, "lambda; null: the base method's default (0.3 / 1.0)")
    merge_func: str = param("mean", "with base_method=ties: disjoint merge divisor, mean or sum")
    seed: int = param(0, "seed of the drop masks' torch.Generator")
    strict: bool = param(True, "keep an entry when u > p (true, the official code) or u >= p (false); u drawn in float32")


class Dare(Method):
    """Random drop with rescaling, then task arithmetic or TIES."""

    name = "dare"
    description = "DARE: drop task-vector entries with prob. p, rescale by 1/(1-p), then TA or TIES"
    reference = "Yu et al., Language Models are Super Mario, ICML 2024 (arXiv 2311.03099)"
    version = "2"
    Params = DareParams
    grid = {"p": [0.1, 0.5, 0.9], "scaling_factor": [0.1, 0.3, 0.5, 0.7, 1.0]}

    def validate(self) -> None:
        check_range(self.name, "p", self.params.p, 0.0, 1.0, high_open=True)
        check_choice(self.name, "base_method", self.params.base_method, BASE_METHODS)
        check_choice(self.name, "merge_func", self.params.merge_func, MERGE_FUNCS)
        if self.params.scaling_factor is not None:
            check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, thetas = load_inputs(self, pool, finite=False)
        p = self.params
        scaling = base_scaling(p.base_method, p.scaling_factor)
        merged = dare_merge(base, thetas, p.p, p.seed, p.base_method, scaling, p.merge_func, p.strict, finetuned=True)
        return finite_or_blame(merged, thetas, pool.tasks, base)
