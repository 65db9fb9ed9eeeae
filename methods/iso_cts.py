"""Iso-CTS: isotropic merging with common and task-specific subspaces (Marczak et al., "No Task
Left Behind: Isotropic Model Merging with Common and Task-Specific Subspaces", ICML 2025).

For each factorised tensor (``factorise``, see ``fusionbench.methods.common``) with
r = min(m, n) and T tasks:
1. Subspace sizes: s = (r - floor(f r)) / T rounded to an integer (``rounding``)
   task-specific directions per task (at most floor(r / T)), k = r - T s common directions;
   f = common fraction 0.8.
2. Common subspace: D = sum_t tau_t = U S V^T; keep U_1:k, S_1:k, V_1:k.
3. Task-specific: for each task, SVD of tau_t - U_1:k U_1:k^T tau_t; keep its top s
   components.
4. Concatenate the common and task-specific U and V, orthogonalise both (Procrustes:
   X = P D Q^T -> P Q^T); sigma_bar = mean of the r kept singular values;
   merged = sigma_bar * U* V*^T.
Every other tensor: merged = (1/T) sum_t tau_t. theta = theta_0 + alpha * merged.
Defaults: f = 0.8, alpha (``scaling_factor``) = 1.6, the paper's eight-task optimum for
ViT-B/16 (B/32: 1.5, L/14: 1.9); grid alpha in {0.25, 0.5, ..., 3.0}. With f = 1 it is Iso-C.

Conventions of the official code (Marczak et al.'s repository), the defaults since version 2:
``factorise=all_2d`` (every 2-D tensor; version 1: ``weights``) and ``rounding=half_even``
(Python's ``round``; version 1: ``half_up``). They differ on half-way sizes: ViT-B/16 with
4 tasks gets k, s = 616, 38 (version 1: 612, 39).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import FACTORISE, FACTORISE_HELP, check_choice, factorised, load_task_vectors, per_matrix_merge
from fusionbench.methods.linalg import compute_dtype, orthogonalise, svd
from fusionbench.methods.iso_c import ALPHA_GRID


ROUNDINGS = ("half_even", "half_up")


def subspace_sizes(rank: int, tasks: int, common_fraction: float, rounding: str = "half_even") -> tuple[int, int]:
    """(k common directions, s task-specific directions per task) with k + T s = rank."""
    share = (rank - math.floor(common_fraction * rank)) / tasks
    specific = min(round(share) if rounding == "half_even" else math.floor(share + 0.5), rank // tasks)
    return rank - tasks * specific, specific


def iso_cts_matrix(vectors: Sequence[torch.Tensor], common_fraction: float = 0.8, rounding: str = "half_even") -> torch.Tensor:
    """sigma_bar * U* V*^T over the common and task-specific subspaces of one weight matrix."""
    dtype = compute_dtype(vectors[0])
    taus = [tau.to(dtype) for tau in vectors]
    common, specific = subspace_sizes(min(taus[0].shape), len(taus), common_fraction, rounding)
    u, s, v = svd(torch.stack(taus).sum(dim=0))
    us, ss, vs = [u[:, :common]], [s[:common]], [v[:, :common]]
    for tau in taus:
        residual = tau - us[0] @ (us[0].mT @ tau)
        u_t, s_t, v_t = svd(residual)
        us.append(u_t[:, :specific])
        ss.append(s_t[:specific])
        vs.append(v_t[:, :specific])
    u_star = orthogonalise(torch.cat(us, dim=1))
    v_star = orthogonalise(torch.cat(vs, dim=1))
    return (torch.cat(ss).mean() * (u_star @ v_star.mT)).to(vectors[0].dtype)


@dataclass
class IsoCtsParams:
    scaling_factor: float = param(1.6, "alpha, the weight of the isotropic merged task matrix, in (0, 10]")
    common_fraction: float = param(0.8, "fraction f of the rank given to the common subspace, in (0, 1]")
    factorise: str = param("all_2d", FACTORISE_HELP)
    rounding: str = param("half_even", "rounding of the task-specific size (r - floor(f r)) / T: half_even (official) or half_up")


class IsoCts(Method):
    """Isotropic merge of the common subspace plus task-specific subspaces."""

    name = "iso_cts"
    description = "Iso-CTS: isotropic merge over common + task-specific singular subspaces"
    reference = "Marczak et al., No Task Left Behind: Isotropic Model Merging, ICML 2025 (arXiv 2502.04959)"
    version = "2"
    Params = IsoCtsParams
    grid = {"scaling_factor": ALPHA_GRID}

    def validate(self) -> None:
        check_range(self.name, "scaling_factor", self.params.scaling_factor, 0.0, 10.0, low_open=True)
        check_range(self.name, "common_fraction", self.params.common_fraction, 0.0, 1.0, low_open=True)
        check_choice(self.name, "factorise", self.params.factorise, FACTORISE)
        check_choice(self.name, "rounding", self.params.rounding, ROUNDINGS)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        matrix_fn = partial(iso_cts_matrix, common_fraction=self.params.common_fraction, rounding=self.params.rounding)
        is_matrix = factorised(pool, self.params.factorise)
        return per_matrix_merge(base, vectors, self.params.scaling_factor, matrix_fn, is_matrix)
