"""WUDI-Merging (Cheng et al., "Whoever Started the Interference Should End It: Guiding Data-Free
Model Merging via Task Vectors", ICML 2025).

For each linear layer's weight matrix (m x n) with task vectors tau_t, the merged update minimises

    L(tau) = sum_t ||(tau - tau_t) tau_t^T||_F^2 / ||tau_t||_F^2,

the interference tau - tau_t causes on inputs from the span of tau_t's rows. L is least squares:
with G_t = tau_t^T tau_t and w_t = 1 / ||tau_t||_F^2, its minimisers solve
tau (sum_t w_t G_t) = sum_t w_t tau_t G_t. ``solver="closed_form"`` (the default) solves that in
float64 with a ridge eps = ``ridge`` * trace(G) / n added to G = sum_t w_t G_t, which leaves
directions outside every task's row space at 0 (where L is flat). ``solver="adam"`` is the paper's
optimiser: Adam from tau = sum_t tau_t, lr 1e-5, 300 steps, in float32 (float64 inputs: float64);
it stops early, so its result can differ from the minimiser where L is flat or ill-conditioned.
theta = theta_0 + lambda * tau per matrix, default lambda = 1.0.

Which tensors: the official code optimises the linear layers' weights (attention and MLP
matrices) and leaves every other tensor at the base model (``others=base``; ``others=mean`` gives
them lambda times the mean task vector). Weight matrices follow ``fusionbench.methods.common``'s rule
``weights`` (2-D, neither embedding nor projection); ``factorise=all_2d`` takes every 2-D tensor.
A zero task vector of a matrix has no weight (its term is 0/0). Grid: lambda in {0.6, ..., 1.4}.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import FACTORISE, check_choice, factorised, load_task_vectors, mean_vector
from fusionbench.methods.linalg import compute_dtype

SOLVERS = ("closed_form", "adam")
OTHERS = ("base", "mean")


def _weights(taus: torch.Tensor) -> torch.Tensor:
    """w_t = 1 / ||tau_t||_F^2, 0 for a zero task vector."""
    squared = taus.square().sum(dim=(1, 2))
    return torch.where(squared > 0, 1.0 / torch.where(squared > 0, squared, torch.ones_like(squared)), torch.zeros_like(squared))


def wudi_loss(merged: torch.Tensor, taus: torch.Tensor) -> torch.Tensor:
    """L(tau) = sum_t w_t ||(tau - tau_t) tau_t^T||_F^2 for the T x m x n stack ``taus``."""
    interference = (merged.unsqueeze(0) - taus) @ taus.mT
    return (interference.square().sum(dim=(1, 2)) * _weights(taus)).sum()


def wudi_closed_form(vectors: Sequence[torch.Tensor], ridge: float = 1e-6) -> torch.Tensor:
    """The minimiser of L: tau = (sum_t w_t tau_t G_t)(G + eps I)^-1, solved in float64."""
    taus = torch.stack([tau.to(torch.float64) for tau in vectors])
    weighted = taus * _weights(taus).view(-1, 1, 1)
    grams = weighted.mT @ taus  # w_t G_t
    gram = grams.sum(dim=0)
    targets = (taus @ grams).sum(dim=0)  # sum_t w_t tau_t G_t
    n = gram.shape[0]
    eps = ridge * float(torch.diagonal(gram).sum()) / n
    if eps == 0.0:  # every task vector is zero
        return torch.zeros_like(vectors[0])
    solved = torch.linalg.solve(gram + eps * torch.eye(n, dtype=torch.float64, device=gram.device), targets.mT).mT
    return solved.to(vectors[0].dtype)


def wudi_adam(vectors: Sequence[torch.Tensor], lr: float = 1e-5, steps: int = 300) -> torch.Tensor:
    """The paper's optimiser: Adam on L from sum_t tau_t."""
    dtype = compute_dtype(vectors[0])
    taus = torch.stack([tau.detach().to(dtype) for tau in vectors])
    merged = torch.nn.Parameter(taus.sum(dim=0))
    optimiser = torch.optim.Adam([merged], lr=lr)
    for _ in range(steps):
        optimiser.zero_grad()
        wudi_loss(merged, taus).backward()
        optimiser.step()
    return merged.detach().to(vectors[0].dtype)


@dataclass
class WudiParams:
    scaling_factor: float = param(1.0, "lambda, the weight of the merged update")
    solver: str = param("closed_form", "closed_form (the exact minimiser, ridge-regularised) or adam (the paper's optimiser)")
    ridge: float = param(1e-6, "closed_form: eps = ridge * trace(G) / n added to G's diagonal, > 0")
    lr: float = param(1e-5, "adam: learning rate (official 1e-5)")
    steps: int = param(300, "adam: optimisation steps (official 300)")
    others: str = param("base", "tensors that are not weight matrices: base (keep theta_0, official) or mean (mean task vector)")
    factorise: str = param("weights", "weight matrices: weights (2-D, not embeddings / projections; official) or all_2d")


class Wudi(Method):
    """Per linear layer, the update minimising the interference each task vector suffers on its own row space."""

    name = "wudi"
    description = "WUDI-Merging: per weight matrix, least-squares minimiser of the task-vector-weighted interference"
    reference = "Cheng et al., Whoever Started the Interference Should End It (WUDI-Merging), ICML 2025 (arXiv 2503.08099)"
    version = "1"
    Params = WudiParams
    grid = {"scaling_factor": [0.6, 0.8, 1.0, 1.2, 1.4]}

    def validate(self) -> None:
        p = self.params
        check_range(self.name, "scaling_factor", p.scaling_factor, -10.0, 10.0)
        check_choice(self.name, "solver", p.solver, SOLVERS)
        check_range(self.name, "ridge", p.ridge, 0.0, 1.0, low_open=True)
        check_range(self.name, "lr", p.lr, 0.0, 1.0, low_open=True)
        check_range(self.name, "steps", p.steps, 1, 1_000_000)
        check_choice(self.name, "others", p.others, OTHERS)
        check_choice(self.name, "factorise", p.factorise, FACTORISE)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        p = self.params
        base, vectors = load_task_vectors(self, pool)
        is_matrix = factorised(pool, p.factorise)
        out = ParamDict()
        for name, tensor in base.items():
            taus = [tau[name] for tau in vectors]
            if is_matrix(name, tensor):
                merged = wudi_closed_form(taus, p.ridge) if p.solver == "closed_form" else wudi_adam(taus, p.lr, p.steps)
                out[name] = tensor + p.scaling_factor * merged
            else:
                out[name] = tensor + p.scaling_factor * mean_vector(taus) if p.others == "mean" else tensor.clone()
        return out
