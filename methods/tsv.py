"""TSV-M: Task Singular Vectors merging (Gargiulo et al., "Task Singular Vectors: Reducing Task
Interference in Model Merging", CVPR 2025).

For each factorised tensor (``factorise``, see ``fusionbench.methods.common``) of shape
m x n, r = min(m, n), T tasks:
1. tau_t = U_t S_t V_t^T; keep the top k = max(min_rank, floor(r / T)) components of each
   task (min_rank only matters when T > r; with k = 0 the merged matrix is 0).
2. U_hat = [U_1k | ... | U_Tk], S_hat = blockdiag(S_1k, ..., S_Tk), V_hat likewise.
3. Orthogonalise (Procrustes): U_hat = P D Q^T -> U_perp = P Q^T; V_perp likewise.
4. merged = U_perp S_hat V_perp^T.
Every other tensor: merged = (1/T) sum_t tau_t. theta = theta_0 + alpha * merged, default
alpha (``scaling_factor``) = 1.0. With one task, merged = tau_1 exactly.

Conventions of the official code (Gargiulo et al.'s repository), the defaults since version 2:
``factorise=all_2d`` (every 2-D tensor, position embeddings and projections included; version
1: ``weights``) and ``min_rank=0`` (no component per task when T > r; version 1: 1).
"""

from __future__ import annotations

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


def tsv_matrix(vectors: Sequence[torch.Tensor], min_rank: int = 0) -> torch.Tensor:
    """U_perp S_hat V_perp^T of one weight matrix's task vectors (0 when no component is kept)."""
    dtype = compute_dtype(vectors[0])
    rank = max(min_rank, min(vectors[0].shape) // len(vectors))
    if rank == 0:
        return torch.zeros_like(vectors[0])
    us, ss, vs = [], [], []
    for tau in vectors:
        u, s, v = svd(tau.to(dtype))
        us.append(u[:, :rank])
        ss.append(s[:rank])
        vs.append(v[:, :rank])
    u_perp = orthogonalise(torch.cat(us, dim=1))
    v_perp = orthogonalise(torch.cat(vs, dim=1))
    return ((u_perp * torch.cat(ss)) @ v_perp.mT).to(vectors[0].dtype)


@dataclass
class TsvParams:
    scaling_factor: float = param(1.0, "alpha, the weight of the merged task vector")
    factorise: str = param("all_2d", FACTORISE_HELP)
    min_rank: int = param(0, "components kept per task at least, 0 (official: none when tasks > rank) or 1")


class Tsv(Method):
    """Per-layer task singular vectors, decorrelated by Procrustes orthogonalisation."""

    name = "tsv"
    description = "TSV-M: top r/T singular components per task, orthogonalised, reconstructed"
    reference = "Gargiulo et al., Task Singular Vectors, CVPR 2025 (arXiv 2412.00081)"
    version = "2"
    Params = TsvParams
    grid = {"scaling_factor": [0.5, 0.75, 1.0, 1.25, 1.5]}

    def validate(self) -> None:
        check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)
        check_choice(self.name, "factorise", self.params.factorise, FACTORISE)
        check_range(self.name, "min_rank", self.params.min_rank, 0, 1)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        matrix_fn = partial(tsv_matrix, min_rank=self.params.min_rank)
        return per_matrix_merge(base, vectors, self.params.scaling_factor, matrix_fn, factorised(pool, self.params.factorise))
