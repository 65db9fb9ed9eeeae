"""KnOTS: aligning LoRA updates with a shared SVD before merging (Stoica et al., "Model Merging with SVD
to Tie the KnOTS", ICLR 2025).

For every adapted layer, with Delta W_t the dense update of task t (m x n; ``s B_t A_t`` for LoRA,
``s (B0 A_t + B_t A0 - B0 A0)`` for L-LoRA, minus the base's):
1. [Delta W_1 | ... | Delta W_T] = U S [V_1^T | ... | V_T^T] (thin SVD in float64, concatenated along
   the input dimension; components with singular value <= ``rank_tol`` = 1e-5 are dropped), so
   Delta W_t = U (S V_t^T) in one basis U shared by all tasks.
2. The per-task factors S V_t^T are merged by a base method over the whole model: TIES (each task's
   factors flattened over every layer, trimmed to the top k, sign elected by mass, disjoint mean) or
   task arithmetic (their sum).
3. theta = theta_0 + alpha * U (merged S V^T) per layer.

Defaults of the official code (its ViT-B configuration): TIES, k = 0.2 (``keep=kthvalue``), mean,
alpha = 0.6. One convention differs and has no parameter: where the trimmed factors' mass is exactly
zero the official code elects the sign of the total sum, FusionBench's TIES elects none (the entry
merges to 0); floating-point masses are exactly zero only when the trimmed entries cancel exactly.
With one task (TIES at k = 1, or task arithmetic) KnOTS returns that task's update; task arithmetic
on the aligned factors is plain task arithmetic.

The dense updates are the parameters of LoRA and L-LoRA pools with ``modelpool.merge_space=delta``
(an adapter of rank r cannot hold the merge, whose rank is up to T r); any other pool is refused
with what to set. Grid: alpha in {0.3, 0.4, ..., 1.0}, k in {0.1, 0.2, 0.5}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import torch

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import load_task_vectors, mean_vector
from fusionbench.methods.linalg import naming, svd
from fusionbench.methods.ties import check_base_method, ties_merge

MODES = ("lora", "llora")
ADAPTER_FACTOR = re.compile(r"\.lora_[AB](\.|$)")


def knots_factors(deltas: Sequence[torch.Tensor], rank_tol: float = 1e-5) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """(U, [S V_t^T per task]) of [Delta W_1 | ... | Delta W_T] = U S [V_1^T | ... | V_T^T], in float64."""
    concat = torch.cat([delta.to(torch.float64) for delta in deltas], dim=1)
    u, s, v = svd(concat)
    kept = s > rank_tol
    aligned = s[kept, None] * v[:, kept].mT
    return u[:, kept], list(torch.split(aligned, deltas[0].shape[1], dim=1))


def _merge_factors(factors: Sequence[ParamDict], base_method: str, k: float, merge_func: str, keep: str) -> ParamDict:
    """The base method over the per-task factors S V_t^T: their sum, or TIES's disjoint merge (unscaled)."""
    if base_method == "task_arithmetic":
        return ParamDict({name: torch.stack([f[name] for f in factors]).sum(dim=0) for name in factors[0]})
    merged = factors[0].map(torch.zeros_like)
    sized = [name for name, tensor in factors[0].items() if tensor.numel()]
    if sized:  # layers whose updates are all zero have no component to merge
        picked = [ParamDict({name: f[name] for name in sized}) for f in factors]
        merged.update(ties_merge(picked[0].map(torch.zeros_like), picked, k, 1.0, merge_func, keep))
    return merged


def knots_merge(
    base: ParamDict, vectors: Sequence[ParamDict], scaling_factor: float, base_method: str = "ties", k: float = 0.2,
    merge_func: str = "mean", keep: str = "kthvalue", rank_tol: float = 1e-5,
) -> ParamDict:
    """theta_0 + alpha * U merged(S V_t^T) for every 2-D tensor, theta_0 + alpha * mean tau_t for any other."""
    bases: dict[str, torch.Tensor] = {}
    factors = [ParamDict() for _ in vectors]
    for name, tensor in base.items():
        if tensor.dim() == 2:
            with naming(name):
                bases[name], aligned = knots_factors([tau[name] for tau in vectors], rank_tol)
            for task, factor in zip(factors, aligned):
                task[name] = factor
    merged = _merge_factors(factors, base_method, k, merge_func, keep)
    out = ParamDict()
    for name, tensor in base.items():
        update = bases[name] @ merged[name] if name in bases else mean_vector([tau[name] for tau in vectors])
        out[name] = tensor + (scaling_factor * update).to(tensor.dtype)
    return out


@dataclass
class KnotsParams:
    scaling_factor: float = param(0.6, "alpha, the weight of the merged update (official ViT-B: 0.6)")
    base_method: str = param("ties", "merge of the aligned factors S V_t^T: ties or task_arithmetic")
    k: float = param(0.2, "with base_method=ties: fraction of each task's aligned factors kept, in (0, 1]")
    merge_func: str = param("mean", "with base_method=ties: disjoint merge divisor, mean (official) or sum")
    keep: str = param("kthvalue", "with base_method=ties: trim rule, kthvalue (official) or topk (see ties)")
    rank_tol: float = param(1e-5, "singular values of the concatenated updates at most this are dropped (official 1e-5), >= 0")


class Knots(Method):
    """Shared-basis SVD of the LoRA updates, then TIES or task arithmetic on the aligned factors."""

    name = "knots"
    description = "KnOTS: SVD of the concatenated LoRA updates, base method on the aligned factors (LoRA / L-LoRA pools)"
    reference = "Stoica et al., Model Merging with SVD to Tie the KnOTS, ICLR 2025 (arXiv 2410.19735)"
    version = "1"
    Params = KnotsParams
    grid = {"scaling_factor": [0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0], "k": [0.1, 0.2, 0.5]}

    def validate(self) -> None:
        p = self.params
        check_base_method(self.name, p.base_method, p.scaling_factor, ("k", p.k), p.merge_func, p.keep)
        check_range(self.name, "rank_tol", p.rank_tol, 0.0, float("inf"))

    def check_pool(self, pool: ModelPool) -> None:
        super().check_pool(pool)
        if pool.mode not in MODES:
            raise ConfigError(
                f"method {self.name!r} merges LoRA updates and supports pools of mode lora or llora, but pool "
                f"{pool.config.name!r} has mode {pool.mode}; use a LoRA or L-LoRA pool with modelpool.merge_space=delta "
                f"(e.g. modelpool=mini_clip_lora modelpool.merge_space=delta), or a method for full models such as ties or tsv"
            )
        factor = next((name for name in pool.base() if ADAPTER_FACTOR.search(name)), None)
        if factor is not None:
            raise ConfigError(
                f"method {self.name!r} merges the dense per-layer updates, which pool {pool.config.name!r} holds as LoRA "
                f"factors (e.g. {factor}) and no adapter of its rank can hold merged; set modelpool.merge_space=delta"
            )

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        p = self.params
        base, vectors = load_task_vectors(self, pool)
        return knots_merge(base, vectors, p.scaling_factor, p.base_method, p.k, p.merge_func, p.keep, p.rank_tol)
