"""Iso-C: isotropic merging in the common subspace (Marczak et al., "No Task Left Behind:
Isotropic Model Merging with Common and Task-Specific Subspaces", ICML 2025).

For each factorised tensor (``factorise``, see ``fusionbench.methods.common``):
D = sum_t tau_t = U S V^T, sigma_bar = mean of all min(m, n) singular values, and
merged = sigma_bar * U V^T (the spectrum flattened). Every other tensor:
merged = (1/T) sum_t tau_t. theta = theta_0 + alpha * merged. Default alpha
(``scaling_factor``) = 1.4, the paper's eight-task optimum for ViT-B/16 (B/32: 1.3,
L/14: 1.5); grid alpha in {0.25, 0.5, ..., 3.0}. ``factorise=all_2d`` (every 2-D tensor,
position embeddings and projections included: the official code) is the default since version
2; version 1 averaged embeddings and projections (``weights``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import FACTORISE, FACTORISE_HELP, check_choice, factorised, load_task_vectors, per_matrix_merge
from fusionbench.methods.linalg import compute_dtype, svd

ALPHA_GRID = [0.25 * i for i in range(1, 13)]


def iso_c_matrix(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """sigma_bar * U V^T of the summed task matrix D = U S V^T."""
    dtype = compute_dtype(vectors[0])
    u, s, v = svd(torch.stack([tau.to(dtype) for tau in vectors]).sum(dim=0))
    return (s.mean() * (u @ v.mT)).to(vectors[0].dtype)


@dataclass
class IsoCParams:
    scaling_factor: float = param(1.4, "alpha, the weight of the isotropic merged task matrix, in (0, 10]")
    factorise: str = param("all_2d", FACTORISE_HELP)


class IsoC(Method):
    """Summed task matrix with its singular value spectrum flattened."""

    name = "iso_c"
    description = "Iso-C: sum of task vectors with a flattened (isotropic) singular spectrum"
    reference = "Marczak et al., No Task Left Behind: Isotropic Model Merging, ICML 2025 (arXiv 2502.04959)"
    version = "2"
    Params = IsoCParams
    grid = {"scaling_factor": ALPHA_GRID}

    def validate(self) -> None:
        check_range(self.name, "scaling_factor", self.params.scaling_factor, 0.0, 10.0, low_open=True)
        check_choice(self.name, "factorise", self.params.factorise, FACTORISE)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        is_matrix = factorised(pool, self.params.factorise)
        return per_matrix_merge(base, vectors, self.params.scaling_factor, iso_c_matrix, is_matrix)
