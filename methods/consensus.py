"""Consensus merging with TALL masks (Wang et al., "Localizing Task Information for Improved Model
Merging and Compression", ICML 2024).

1. Multi-task vector tau_MTL from a base method: task arithmetic (sum_t tau_t) or TIES (trim to
   the top ``ties_k`` fraction, elect, disjoint merge; unscaled).
2. TALL mask of each task: m_t = |tau_t| > lambda |tau_MTL - tau_t| (strict, as the official code).
3. Consensus mask: entries where at least k tasks' masks agree, sum_t m_t >= k (k = 2 drops the
   "selfish" entries one task alone needs and the "catastrophic" ones no task needs; k = 0 keeps
   everything, the base method; k > T keeps nothing, the base model).
4. theta = theta_0 + alpha * (consensus mask * tau_MTL).

The official code picks lambda per task on validation data from {0.2, ..., 0.6}; data-free, one
lambda serves every task: default 0.4 (the middle of that grid; the sweep grid covers it). Other
defaults follow the official code: k = 2, TIES keeps 20% (``keep=kthvalue``) and sums the agreeing
entries (``merge_func=sum``, its "dis-sum"); alpha = the base method's default (0.3 task arithmetic,
1.0 TIES). Grid: lambda in {0.2, ..., 0.6}, alpha in {0.3, 0.5, 0.7, 1.0}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import load_task_vectors
from fusionbench.methods.ties import base_scaling, check_base_method, ties_merge


def tall_masks(taus: Sequence[torch.Tensor], merged: torch.Tensor, tall_mask_lambda: float) -> torch.Tensor:
    """The T stacked TALL masks of one tensor: m_t = |tau_t| > lambda |tau_MTL - tau_t|."""
    stacked = torch.stack(list(taus))
    return stacked.abs() > tall_mask_lambda * (merged - stacked).abs()


def consensus_mask(taus: Sequence[torch.Tensor], merged: torch.Tensor, tall_mask_lambda: float, k: int) -> torch.Tensor:
    """True where at least ``k`` tasks' TALL masks hold."""
    return tall_masks(taus, merged, tall_mask_lambda).sum(dim=0) >= k


def multi_task_vector(vectors: Sequence[ParamDict], base_method: str, ties_k: float, merge_func: str, keep: str) -> ParamDict:
    """tau_MTL, unscaled: sum_t tau_t (task arithmetic) or TIES's disjoint merge of the trimmed tau_t."""
    if base_method == "ties":
        zero = vectors[0].map(torch.zeros_like)
        return ties_merge(zero, vectors, ties_k, 1.0, merge_func, keep)
    return ParamDict({name: torch.stack([tau[name] for tau in vectors]).sum(dim=0) for name in vectors[0]})


@dataclass
class ConsensusParams:
    k: int = param(2, "fewest tasks whose TALL masks must hold for an entry to be kept, >= 0")
    tall_mask_lambda: float = param(0.4, "lambda of the TALL masks |tau_t| > lambda |tau_MTL - tau_t|, one for every task, > 0")
    base_method: str = param("task_arithmetic", "multi-task vector: task_arithmetic (sum) or ties")
    scaling_factor: Optional[float] = param(None, "alpha; null: the base method's default (0.3 / 1.0)")
    ties_k: float = param(0.2, "with base_method=ties: fraction of each task vector's entries kept, in (0, 1]")
    merge_func: str = param("sum", "with base_method=ties: disjoint merge divisor, sum (official consensus) or mean")
    keep: str = param("kthvalue", "with base_method=ties: trim rule, kthvalue (official) or topk (see ties)")


class Consensus(Method):
    """Keep the multi-task vector's entries that at least k tasks' TALL masks select."""

    name = "consensus"
    description = "Consensus merging: TA or TIES restricted to entries at least k tasks' TALL masks select"
    reference = "Wang et al., Localizing Task Information for Improved Model Merging and Compression, ICML 2024 (arXiv 2405.07813)"
    version = "1"
    Params = ConsensusParams
    grid = {"tall_mask_lambda": [0.2, 0.3, 0.4, 0.5, 0.6], "scaling_factor": [0.3, 0.5, 0.7, 1.0]}

    def validate(self) -> None:
        p = self.params
        check_range(self.name, "k", p.k, 0, 1_000_000)
        check_range(self.name, "tall_mask_lambda", p.tall_mask_lambda, 0.0, 100.0, low_open=True)
        check_base_method(self.name, p.base_method, p.scaling_factor, ("ties_k", p.ties_k), p.merge_func, p.keep)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        p = self.params
        base, vectors = load_task_vectors(self, pool)
        merged = multi_task_vector(vectors, p.base_method, p.ties_k, p.merge_func, p.keep)
        scaling = base_scaling(p.base_method, p.scaling_factor)
        out = ParamDict()
        for name, tensor in base.items():
            mask = consensus_mask([tau[name] for tau in vectors], merged[name], p.tall_mask_lambda, p.k)
            out[name] = tensor + scaling * (mask.to(tensor.dtype) * merged[name])
        return out
