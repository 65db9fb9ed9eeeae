"""PCB-merging: Parameter Competition Balancing (Du et al., "Parameter Competition Balancing for
Model Merging", NeurIPS 2024).

Every task vector is flattened over all its tensors (one row of N entries per task, as the
official code does); sorted(x)[i] is the (i+1)-th smallest entry of a row, normalize(x) its
min-max rescaling to [0, 1]:
1. Outlier clamp: |tau_t| clamped to [sorted[int(N r)], sorted[int(N (1 - r)) - 1]], r = 1e-4
   (``outlier_ratio``); tau'_t = sign(tau_t) * clamped |tau_t|.
2. Intra-balancing: exp(T * normalize(clamped |tau_t|)^2).
3. Inter-balancing: tanh(tau_t * sum_s tau_s) (the unclamped tau).
4. beta_t = product of the two; drop: beta_t clamped from below at sorted[int(N (1 - ratio))], then
   normalized, so only the entries scoring above that value (about the top ``ratio`` fraction of
   each task) keep a weight above 0.
5. merged = sum_t beta_t tau'_t / max(sum_t beta_t, 1e-12); theta = theta_0 + lambda * merged.

Defaults of the official code: ratio 0.1, r = 1e-4, lambda 1.0 (the start of its evolutionary
search of per-task lambdas in [0.8, 1.3], which needs validation data and is not done here).
One difference, deliberate: a row whose maximum equals its minimum normalizes to 0, where the
official code divides 0 by 0 (NaN). Memory: T flattened copies of the task vectors and a few
temporaries of that size. Grid: ratio in {0.05, 0.1, 0.2}, lambda in {0.6, 0.8, 1.0, 1.2, 1.4}.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import load_task_vectors
from fusionbench.methods.linalg import compute_dtype


def sorted_at(rows: torch.Tensor, index: int) -> torch.Tensor:
    """``sort(rows, dim=1)[:, index]`` (Python indexing: -1 is the largest) as a column, without sorting."""
    n = rows.shape[1]
    return torch.kthvalue(rows, index % n + 1, dim=1, keepdim=True).values


def normalize(rows: torch.Tensor) -> torch.Tensor:
    """Each row rescaled to [0, 1] by its min and max; a constant row becomes 0."""
    low = rows.min(dim=1, keepdim=True).values
    span = rows.max(dim=1, keepdim=True).values - low
    return (rows - low) / torch.where(span > 0, span, torch.ones_like(span))


def pcb_scores(taus: torch.Tensor, ratio: float, outlier_ratio: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """(clamped task vectors tau'_t, balancing weights beta_t) of the T x N matrix of flattened task vectors."""
    tasks, n = taus.shape
    magnitudes = taus.abs()
    low = sorted_at(magnitudes, int(n * outlier_ratio))
    high = sorted_at(magnitudes, int(n * (1 - outlier_ratio)) - 1)
    clamped = torch.maximum(torch.minimum(magnitudes, high), low)
    intra = torch.exp(tasks * normalize(clamped) ** 2)
    inter = torch.tanh(taus * taus.sum(dim=0))
    competition = intra * inter
    floor = sorted_at(competition, int(n * (1 - ratio)))
    return torch.sign(taus) * clamped, normalize(torch.maximum(competition, floor))


def pcb_merge(base: ParamDict, vectors: list[ParamDict], ratio: float, scaling_factor: float, outlier_ratio: float = 1e-4) -> ParamDict:
    """theta_0 + lambda * sum_t beta_t tau'_t / sum_t beta_t over the flattened task vectors (see the module docstring)."""
    dtype = compute_dtype(next(iter(base.values())))
    taus = torch.stack([tau.flatten().to(dtype) for tau in vectors])
    clamped, weights = pcb_scores(taus, ratio, outlier_ratio)
    merged = (clamped * weights).sum(dim=0) / weights.sum(dim=0).clamp(min=1e-12)
    return base + base.unflatten(scaling_factor * merged)


@dataclass
class PcbParams:
    ratio: float = param(0.1, "fraction of each task's entries kept by the drop (highest balancing score), in (0, 1]")
    scaling_factor: float = param(1.0, "lambda, the weight of the merged task vector")
    outlier_ratio: float = param(1e-4, "fraction of each task's |tau| clamped at either end before scoring, in [0, 0.5)")


class Pcb(Method):
    """Weight each entry by intra- and inter-task competition scores, drop the lowest, average."""

    name = "pcb"
    description = "PCB-merging: intra- x inter-task balancing scores, drop all but the top ratio, weighted mean"
    reference = "Du et al., Parameter Competition Balancing for Model Merging, NeurIPS 2024 (arXiv 2410.02396)"
    version = "1"
    Params = PcbParams
    grid = {"ratio": [0.05, 0.1, 0.2], "scaling_factor": [0.6, 0.8, 1.0, 1.2, 1.4]}

    def validate(self) -> None:
        check_range(self.name, "ratio", self.params.ratio, 0.0, 1.0, low_open=True)
        check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)
        check_range(self.name, "outlier_ratio", self.params.outlier_ratio, 0.0, 0.5, high_open=True)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        return pcb_merge(base, vectors, self.params.ratio, self.params.scaling_factor, self.params.outlier_ratio)
