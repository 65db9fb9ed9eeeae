"""Model Breadcrumbs (Davari & Belilovsky, "Model Breadcrumbs: Scaling Multi-Task Model Merging with
Sparse Masks", ECCV 2024).

Each task vector is masked row by row (along its last dimension, as the official code does; a 1-D
tensor is one row, a scalar is kept): the n entries of a row are ranked by |tau| (``torch.topk``'s
order, which also breaks ties), the int(n beta) largest (outliers) and the int(n gamma) smallest
(noise) are dropped. Then task arithmetic: theta = theta_0 + lambda * sum_t mask_t * tau_t.

The official code ranks the same way (remove the int(n r) largest, then keep the int(n q) largest
of the rest); here the bottom is given as a dropped fraction gamma, as in the paper, so the kept
count is n - int(n beta) - int(n gamma) where the official code's is int(n q): the two agree
whenever n q and n gamma are integers. Defaults: beta = 0.01, gamma = 0.85, lambda = 0.3
(FusionBench's: the official code sets them per experiment by search; its command-line defaults
mask nothing). Grid: beta in {0, 0.01}, gamma in {0.8, 0.9}, lambda in {0.3, 0.5, 0.7, 1.0}. Each
tensor is merged from that tensor alone, so full checkpoints can stream (``fusionbench merge stream=true``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import load_task_vectors


def breadcrumbs_mask(tau: torch.Tensor, beta: float, gamma: float) -> torch.Tensor:
    """1 where an entry of ``tau`` survives: per row of n entries ranked by |tau|, ranks [int(n beta), n - int(n gamma))."""
    if tau.dim() == 0:
        return torch.ones_like(tau)
    n = tau.shape[-1]
    order = torch.topk(tau.abs(), n, dim=-1).indices  # descending magnitude
    ranks = torch.empty_like(order).scatter_(-1, order, torch.arange(n, device=tau.device).expand_as(order))
    keep = (ranks >= int(n * beta)) & (ranks < n - int(n * gamma))
    return keep.to(tau.dtype)


def breadcrumbs_merge(base: ParamDict, vectors: Sequence[ParamDict], beta: float, gamma: float, scaling_factor: float) -> ParamDict:
    """theta_0 + lambda * sum_t mask_t * tau_t (see the module docstring)."""
    out = ParamDict()
    for name, tensor in base.items():
        masked = sum(breadcrumbs_mask(tau[name], beta, gamma) * tau[name] for tau in vectors)
        out[name] = tensor + scaling_factor * masked
    return out


@dataclass
class BreadcrumbsParams:
    beta: float = param(0.01, "fraction of each row's entries dropped at the top (largest |tau|), in [0, 1)")
    gamma: float = param(0.85, "fraction of each row's entries dropped at the bottom (smallest |tau|), in [0, 1); beta + gamma < 1")
    scaling_factor: float = param(0.3, "lambda, the weight of the summed masked task vectors")


class Breadcrumbs(Method):
    """Drop each task vector's outliers and smallest entries per row, then task arithmetic."""

    name = "breadcrumbs"
    description = "Model Breadcrumbs: per-row masks drop the top beta and bottom gamma of |tau|, then TA"
    reference = "Davari & Belilovsky, Model Breadcrumbs, ECCV 2024 (arXiv 2312.06795)"
    version = "1"
    Params = BreadcrumbsParams
    grid = {"beta": [0.0, 0.01], "gamma": [0.8, 0.9], "scaling_factor": [0.3, 0.5, 0.7, 1.0]}
    tensorwise = True

    def validate(self) -> None:
        p = self.params
        check_range(self.name, "beta", p.beta, 0.0, 1.0, high_open=True)
        check_range(self.name, "gamma", p.gamma, 0.0, 1.0, high_open=True)
        check_range(self.name, "scaling_factor", p.scaling_factor, -10.0, 10.0)
        if p.beta + p.gamma >= 1.0:
            raise ConfigError(
                f"method {self.name!r}: beta={p.beta} + gamma={p.gamma} drops every entry; their sum must be below 1 "
                f"(e.g. beta=0.01 gamma=0.85)"
            )

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        return breadcrumbs_merge(base, vectors, self.params.beta, self.params.gamma, self.params.scaling_factor)
