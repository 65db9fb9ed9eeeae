"""CART: Centered Arithmetic with Rank-reduced Task vectors (Choi et al., "Revisiting Weight
Averaging for Model Merging", arXiv 2412.12153).

theta_avg = (1/T) sum_t theta_t and c_t = theta_t - theta_avg (centered task vectors).
Weight matrices (``fusionbench.methods.common``'s rule ``weights``: 2-D, not embedding-like):
    theta = theta_avg + lambda * sum_t SVD_k(c_t),  k = max(1, floor(rho * min(m, n))),
SVD_k the rank-k truncated SVD. Every other tensor (biases, norms, embeddings) is
theta_avg: its full c_t sum to zero. Hence rho = 1 gives weight averaging for any lambda.
Defaults: rho = 0.12, lambda = 2.0 (the released eight-task configuration; 14 tasks: 0.16,
1.5; 20 tasks: 0.32, 1.9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import IsMatrix, factorised, is_weight_matrix, load_finetuned, mean_vector
from fusionbench.methods.linalg import compute_dtype, low_rank, naming


def cart_rank(rho: float, shape: Sequence[int]) -> int:
    """k = max(1, floor(rho * min(m, n)))."""
    return max(1, math.floor(rho * min(shape)))


def cart_matrix(thetas: Sequence[torch.Tensor], rho: float, scaling_factor: float) -> torch.Tensor:
    """theta_avg + lambda * sum_t SVD_k(theta_t - theta_avg) for one weight matrix."""
    dtype = compute_dtype(thetas[0])
    stacked = torch.stack([theta.to(dtype) for theta in thetas])
    average = stacked.mean(dim=0)
    rank = cart_rank(rho, average.shape)
    reduced = torch.stack([low_rank(theta - average, rank) for theta in stacked]).sum(dim=0)
    return (average + scaling_factor * reduced).to(thetas[0].dtype)


def cart_merge(thetas: Sequence[ParamDict], rho: float, scaling_factor: float, is_matrix: IsMatrix = is_weight_matrix) -> ParamDict:
    """CART over whole ParamDicts of fine-tuned parameters (``is_matrix`` picks the tensors it factorises)."""
    out = ParamDict()
    for name, first in thetas[0].items():
        tensors = [theta[name] for theta in thetas]
        with naming(name):
            out[name] = cart_matrix(tensors, rho, scaling_factor) if is_matrix(name, first) else mean_vector(tensors)
    return out


@dataclass
class CartParams:
    rho: float = param(0.12, "rank fraction kept per weight matrix, k = max(1, floor(rho * min(m, n))), in (0, 1]")
    scaling_factor: float = param(2.0, "lambda, the weight of the summed rank-reduced centered vectors")


class Cart(Method):
    """Weight average plus low-rank centered task vectors."""

    name = "cart"
    description = "CART: weight average + lambda * sum of rank-reduced centered task vectors"
    reference = "Choi et al., Revisiting Weight Averaging for Model Merging, arXiv 2412.12153"
    version = "1"
    Params = CartParams
    grid = {"rho": [0.04, 0.08, 0.12, 0.16, 0.32], "scaling_factor": [1.0, 1.5, 2.0, 2.5]}

    def validate(self) -> None:
        check_range(self.name, "rho", self.params.rho, 0.0, 1.0, low_open=True)
        check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        return cart_merge(load_finetuned(self, pool), self.params.rho, self.params.scaling_factor, factorised(pool, "weights"))
