"""DARE: Drop And REscale (Yu et al., "Language Models are Super Mario", ICML 2024).

Each task-vector entry is dropped with probability p (Bernoulli mask) and the survivors
are rescaled by 1 / (1 - p), so every entry keeps its expectation:
tau'_t = m_t * tau_t / (1 - p), m_t ~ Bernoulli(1 - p). The tau'_t are then merged by
``base_method="task_arithmetic"`` (theta_0 + lambda * sum_t tau'_t) or ``base_method="ties"`` (sign
election and disjoint merge of the tau'_t; DARE replaces TIES's magnitude trim, as in
peft's ``dare_ties``).

Masks come from one ``torch.Generator`` seeded with ``seed``, drawn on the CPU task by
task (pool order) and tensor by tensor (key order): results are reproducible per seed,
identical across devices, and the global RNG is never touched.
Defaults: p = 0.5, base_method task_arithmetic, lambda = the base method's default (0.3 for task
arithmetic, 1.0 for TIES), merge_func mean, seed 0.
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
from fusionbench.methods.task_arithmetic import TaskArithmeticParams, task_arithmetic_merge
from fusionbench.methods.ties import MERGE_FUNCS, TiesParams, ties_merge

BASE_METHODS = ("task_arithmetic", "ties")
DEFAULT_SCALING = {"task_arithmetic": TaskArithmeticParams().scaling_factor, "ties": TiesParams().scaling_factor}


def keep_mask(tensor: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """Boolean mask, True with probability 1 - p per entry, drawn on the CPU from ``generator``."""
    return (torch.rand(tensor.shape, generator=generator) >= p).to(tensor.device)


def drop_and_rescale(tensor: torch.Tensor, keep: torch.Tensor, p: float) -> torch.Tensor:
    """Entries where ``keep`` is False become 0; the others are divided by (1 - p)."""
    return torch.where(keep, tensor / (1.0 - p), torch.zeros_like(tensor))


def dare_vectors(vectors: Sequence[ParamDict], p: float, seed: int) -> list[ParamDict]:
    """Each task vector with entries dropped with probability p and survivors rescaled by 1/(1-p)."""
    generator = torch.Generator().manual_seed(seed)
    return [tau.map(lambda t: drop_and_rescale(t, keep_mask(t, p, generator), p)) for tau in vectors]


def dare_merge(
    base: ParamDict,
    vectors: Sequence[ParamDict],
    p: float,
    seed: int,
    base_method: str = "task_arithmetic",
    scaling_factor: float = 0.3,
    merge_func: str = "mean",
) -> ParamDict:
    """Drop-and-rescale every task vector, then merge with task arithmetic or TIES (k = 1)."""
    dropped = dare_vectors(vectors, p, seed)
    if base_method == "ties":
        return ties_merge(base, dropped, 1.0, scaling_factor, merge_func)
    return task_arithmetic_merge(base, dropped, scaling_factor)


@dataclass
class DareParams:
    p: float = param(0.5, "probability of dropping each task-vector entry, in [0, 1)")
    base_method: str = param("task_arithmetic", "merge applied after dropping: task_arithmetic or ties")
    scaling_factor: Optional[float] = param(None, "lambda; null: the base method's default (0.3 / 1.0)")
    merge_func: str = param("mean", "with base_method=ties: disjoint merge divisor, mean or sum")
    seed: int = param(0, "seed of the drop masks' torch.Generator")


class Dare(Method):
    """Random drop with rescaling, then task arithmetic or TIES."""

    name = "dare"
    description = "DARE: drop task-vector entries with prob. p, rescale by 1/(1-p), then TA or TIES"
    reference = "Yu et al., Language Models are Super Mario, ICML 2024 (arXiv 2311.03099)"
    version = "1"
    Params = DareParams
    grid = {"p": [0.1, 0.5, 0.9], "scaling_factor": [0.1, 0.3, 0.5, 0.7, 1.0]}

    def validate(self) -> None:
        check_range(self.name, "p", self.params.p, 0.0, 1.0, high_open=True)
        check_choice(self.name, "base_method", self.params.base_method, BASE_METHODS)
        check_choice(self.name, "merge_func", self.params.merge_func, MERGE_FUNCS)
        if self.params.scaling_factor is not None:
            check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        scaling = self.params.scaling_factor
        return dare_merge(
            base,
            vectors,
            self.params.p,
            self.params.seed,
            self.params.base_method,
            DEFAULT_SCALING[self.params.base_method] if scaling is None else scaling,
            self.params.merge_func,
        )
