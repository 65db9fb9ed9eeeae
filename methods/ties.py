"""TIES-Merging (Yadav et al., "TIES-Merging: Resolving Interference When Merging Models", NeurIPS 2023).

1. Trim: keep the top-k fraction of each task vector's entries by magnitude; the
   threshold is taken over the whole flattened task vector (not per tensor): the
   int(k * N)-th largest |entry| of its N entries, entries at least that large are kept.
2. Elect: gamma = sign(sum_t trimmed tau_t) (total mass); an entry whose mass is exactly
   zero elects no sign and merges to 0.
3. Disjoint merge of the trimmed entries whose sign equals gamma (zeros excluded):
   ``merge_func="mean"`` divides by the number of agreeing entries, at least 1 (paper,
   peft's ``disjoint_merge``); ``merge_func="sum"`` does not divide (the original
   FusionBench convention).
4. theta = theta_0 + lambda * merged.

Defaults: k = 0.2 and lambda = 1.0 (the paper's settings without validation data), mean.
Grid: k, lambda in {0.25, 0.5, 0.75, 1.0} (L-LoRA paper). Steps 2-3 are element-wise and
step 1 needs one threshold per task, so checkpoints can be streamed tensor by tensor.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import check_choice, load_task_vectors

MERGE_FUNCS = ("mean", "sum")


def _magnitude_dtype(vector: ParamDict) -> torch.dtype:
    """float64 when the vector holds float64 tensors, else float32 (exact for every half type)."""
    return torch.float64 if any(t.dtype == torch.float64 for t in vector.values()) else torch.float32


def trim_threshold(vector: ParamDict, k: float) -> float:
    """Magnitude of the int(k * N)-th largest entry of the flattened vector (inf when none is kept)."""
    dtype = _magnitude_dtype(vector)
    magnitudes = torch.cat([t.detach().reshape(-1).abs().to(dtype) for t in vector.values()])
    keep = int(k * magnitudes.numel())
    if keep == 0:
        return float("inf")
    return float(torch.kthvalue(magnitudes, magnitudes.numel() - keep + 1).values)


def trim(vector: ParamDict, k: float) -> ParamDict:
    """Zero every entry below the global top-k magnitude threshold of ``vector``."""
    threshold, dtype = trim_threshold(vector, k), _magnitude_dtype(vector)
    return vector.map(lambda t: torch.where(t.abs().to(dtype) >= threshold, t, torch.zeros_like(t)))


def elect_signs(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """gamma = sign(sum_t tensors[t]), the sign carrying the larger total mass."""
    return torch.stack(list(tensors)).sum(dim=0).sign()


def disjoint_merge(tensors: Sequence[torch.Tensor], merge_func: str = "mean") -> torch.Tensor:
    """Mean ("mean") or sum ("sum") of the entries whose sign agrees with the elected sign."""
    stacked = torch.stack(list(tensors))
    agree = (stacked.sign() == elect_signs(tensors)) & (stacked != 0)
    total = torch.where(agree, stacked, torch.zeros_like(stacked)).sum(dim=0)
    if merge_func == "sum":
        return total
    return total / agree.sum(dim=0).clamp(min=1).to(total.dtype)


def ties_merge(
    base: ParamDict, vectors: Sequence[ParamDict], k: float, scaling_factor: float, merge_func: str = "mean"
) -> ParamDict:
    """theta_0 + lambda * disjoint_merge(elect(trim_k(tau_t)))."""
    trimmed = [trim(tau, k) for tau in vectors]
    return ParamDict(
        {
            name: tensor + scaling_factor * disjoint_merge([tau[name] for tau in trimmed], merge_func)
            for name, tensor in base.items()
        }
    )


@dataclass
class TiesParams:
    k: float = param(0.2, "fraction of each task vector's entries kept by magnitude, in (0, 1]")
    scaling_factor: float = param(1.0, "lambda, the weight of the merged task vector")
    merge_func: str = param("mean", "disjoint merge divisor: mean (by agreeing entries) or sum (none)")


class Ties(Method):
    """Trim, elect sign, disjoint merge."""

    name = "ties"
    description = "TIES-Merging: trim to top-k, elect signs by mass, disjoint merge, scale"
    reference = "Yadav et al., TIES-Merging, NeurIPS 2023 (arXiv 2306.01708)"
    version = "1"
    Params = TiesParams
    grid = {"k": [0.25, 0.5, 0.75, 1.0], "scaling_factor": [0.25, 0.5, 0.75, 1.0]}

    def validate(self) -> None:
        check_range(self.name, "k", self.params.k, 0.0, 1.0, low_open=True)
        check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)
        check_choice(self.name, "merge_func", self.params.merge_func, MERGE_FUNCS)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        return ties_merge(base, vectors, self.params.k, self.params.scaling_factor, self.params.merge_func)
