"""AWD: Adaptive Weight Disentanglement (Xiong et al., "Multi-Task Model Merging via Adaptive
Weight Disentanglement", arXiv 2411.18729).

One redundant vector delta (same shape as a task vector, shared by all tasks) minimises

    L(delta) = 1/(T(T-1)) sum_{i != j} |cos(tau_i - delta, tau_j - delta)| + alpha ||delta||_2

and the disentangled vectors tau_i - delta go to a base method: task arithmetic
(theta_0 + lambda sum_i (tau_i - delta)) or TIES. Defaults: alpha 0.1, lr 0.01, 300 steps,
delta_0 = 0, float32 (bf16 underflows), base_method task_arithmetic, lambda = the base
method's default (0.3 task arithmetic, 1.0 TIES), TIES k 0.2, mean divisor and TIES's keep
rule (``keep=kthvalue``, the official TIES code's, since version 2; version 1 kept int(k N)
entries, ``keep=topk``).

The official code is unreleased (its repository holds only a README); the choices made here:
- ``cosine="global"`` takes cosines of the whole flattened vectors (as a public
  reimplementation does); ``cosine="per_tensor"`` averages the pairwise term over tensors
  (whether the paper works per layer is unverified). A zero vector has cosine 0.
- ||delta||_2 is the norm of the whole flattened delta in both modes.
- Optimiser: proximal gradient descent. Each step takes a gradient step of size lr on the
  cosine term, then applies the exact proximal map of lr * alpha ||.||_2 (shrink delta's
  norm by lr * alpha, stopping at 0). The norm is not differentiable at delta_0 = 0, where
  plain (sub)gradient descent would oscillate; with the proximal map a large alpha keeps
  delta = 0 exactly, so AWD reduces to its base method.
- Scale: L_O is invariant to scaling all tau_i and delta together, alpha ||delta|| is not, so
  alpha acts relative to the task vectors' norm: delta leaves 0 only where
  ||grad L_O(0)|| (about 1 / ||tau||) exceeds alpha. The defaults suit task vectors of norm
  about 1-10 (CLIP fine-tuning); a pool with much larger task vectors needs a smaller alpha.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import check_choice, load_task_vectors
from fusionbench.methods.task_arithmetic import task_arithmetic_merge
from fusionbench.methods.ties import base_scaling, check_base_method, ties_merge

COSINES = ("global", "per_tensor")
_TINY = 1e-30  # floor of squared norms: keeps zero vectors' cosines (and gradients) at 0


def _abs_cosines(gram: torch.Tensor) -> torch.Tensor:
    """Mean over i != j of |cos| given the Gram matrix of T vectors."""
    norms = torch.diagonal(gram).clamp_min(_TINY).sqrt()
    cosines = gram / torch.outer(norms, norms)
    off_diagonal = ~torch.eye(gram.shape[0], dtype=torch.bool, device=gram.device)
    return cosines[off_diagonal].abs().mean()


def orthogonality_loss(vectors: Sequence[ParamDict], delta: ParamDict, cosine: str = "global") -> torch.Tensor:
    """L_O = 1/(T(T-1)) sum_{i != j} |cos(tau_i - delta, tau_j - delta)|, global or averaged per tensor."""
    grams = []
    for name, d in delta.items():
        rows = torch.stack([tau[name].reshape(-1) for tau in vectors]) - d.reshape(1, -1)
        grams.append(rows @ rows.mT)
    if cosine == "global":
        return _abs_cosines(torch.stack(grams).sum(dim=0))
    return torch.stack([_abs_cosines(gram) for gram in grams]).mean()


def awd_objective(vectors: Sequence[ParamDict], delta: ParamDict, alpha: float, cosine: str = "global") -> torch.Tensor:
    """L(delta) = L_O + alpha * ||delta||_2."""
    return orthogonality_loss(vectors, delta, cosine) + alpha * delta.flatten().norm()


def redundant_vector(
    vectors: Sequence[ParamDict], alpha: float = 0.1, lr: float = 0.01, steps: int = 300, cosine: str = "global"
) -> tuple[ParamDict, list[float]]:
    """delta minimising L by proximal gradient descent from 0, in float32; returns it and L at each iterate."""
    taus = [tau.map(lambda t: t.detach().float()) for tau in vectors]
    delta = taus[0].map(lambda t: torch.zeros_like(t, requires_grad=True))
    history = []
    for _ in range(steps):
        loss = orthogonality_loss(taus, delta, cosine)
        history.append(float(loss.detach()) + alpha * float(delta.flatten().detach().norm()))
        grads = torch.autograd.grad(loss, list(delta.values()))
        with torch.no_grad():
            for d, g in zip(delta.values(), grads):
                d -= lr * g
            norm = float(delta.flatten().norm())
            shrink = max(0.0, 1.0 - lr * alpha / norm) if norm > 0 else 0.0
            for d in delta.values():
                d *= shrink
    delta = delta.map(lambda t: t.detach())
    with torch.no_grad():
        history.append(float(awd_objective(taus, delta, alpha, cosine)))
    return delta, history


def disentangle(vectors: Sequence[ParamDict], delta: ParamDict) -> list[ParamDict]:
    """tau_i - delta, computed in at least float32 and returned in each tensor's own dtype."""

    def subtract(t: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        return (t.to(torch.promote_types(t.dtype, d.dtype)) - d).to(t.dtype)

    return [tau.zip_map(delta, subtract) for tau in vectors]


@dataclass
class AwdParams:
    alpha: float = param(0.1, "weight of ||delta||_2 in the objective, >= 0")
    lr: float = param(0.01, "step size of the proximal gradient descent, > 0")
    steps: int = param(300, "number of optimisation steps, >= 1")
    cosine: str = param("global", "cosine over the flattened vector (global) or averaged per tensor (per_tensor)")
    base_method: str = param("task_arithmetic", "merge of the disentangled vectors: task_arithmetic or ties")
    scaling_factor: Optional[float] = param(None, "lambda; null: the base method's default (0.3 / 1.0)")
    k: float = param(0.2, "with base_method=ties: fraction of entries kept, in (0, 1]")
    merge_func: str = param("mean", "with base_method=ties: disjoint merge divisor, mean or sum")
    keep: str = param("kthvalue", "with base_method=ties: trim rule, kthvalue (official) or topk (see ties)")


class Awd(Method):
    """Remove a shared redundant vector so task vectors become orthogonal, then merge."""

    name = "awd"
    description = "AWD: subtract a learned redundant vector to decorrelate task vectors, then TA or TIES"
    reference = "Xiong et al., Multi-Task Model Merging via Adaptive Weight Disentanglement, arXiv 2411.18729"
    version = "2"
    Params = AwdParams
    grid = {"scaling_factor": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]}
    min_tasks = 2

    def validate(self) -> None:
        p = self.params
        check_range(self.name, "alpha", p.alpha, 0.0, float("inf"))
        check_range(self.name, "lr", p.lr, 0.0, float("inf"), low_open=True)
        check_range(self.name, "steps", p.steps, 1, 1_000_000)
        check_choice(self.name, "cosine", p.cosine, COSINES)
        check_base_method(self.name, p.base_method, p.scaling_factor, ("k", p.k), p.merge_func, p.keep)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        p = self.params
        base, vectors = load_task_vectors(self, pool)
        delta, _ = redundant_vector(vectors, p.alpha, p.lr, p.steps, p.cosine)
        disentangled = disentangle(vectors, delta)
        scaling = base_scaling(p.base_method, p.scaling_factor)
        if p.base_method == "ties":
            return ties_merge(base, disentangled, p.k, scaling, p.merge_func, p.keep)
        return task_arithmetic_merge(base, disentangled, scaling)
