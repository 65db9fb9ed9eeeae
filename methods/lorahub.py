"""LoraHub (Huang et al., "LoraHub: Efficient Cross-Task Generalization via Dynamic LoRA
Composition", COLM 2024), as used in the L-LoRA paper (Tang et al., ICLR 2024).

phi = phi_0 + sum_i w_i tau_i. The weights w minimise, gradient-free,

    (1/T) sum_t mean_batches loss_t(phi) + l1 * (1/T) sum_i |w_i|

over the pool's tasks, with each task's loss averaged over its first
``examples_per_task`` labelled examples of ``split`` (fetched once, in batches of
``batch_size``, through the task pool's data contract, ``TaskPool.examples``; test labels are
never read, so ``split`` is train or validation). Optimiser: nevergrad's ``NGOpt`` (the reference code;
the paper text says Shiwa) over ``Array(init 0, bounds [lower, upper])`` with ``budget``
evaluations; the parametrisation's random state is seeded with ``seed``, so runs are
reproducible. The recommended point is used. Defaults: budget 40, bounds [-1.5, 1.5],
l1 0.05, 64 validation examples per task (the L-LoRA paper's language runs use up to
320: ``method.examples_per_task=320``), batch size 32, seed 0.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import nevergrad as ng
import numpy as np
import torch

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import DataUse, TaskPool
from fusionbench.methods.common import load_task_vectors
from fusionbench.methods.data_based import check_labelled_split


def lorahub_weights(
    objective: Callable[[np.ndarray], float], n: int, budget: int, lower: float, upper: float, seed: int
) -> np.ndarray:
    """argmin of ``objective`` over [lower, upper]^n found by NGOpt from 0 with ``budget`` evaluations."""
    parametrization = ng.p.Array(init=np.zeros(n), lower=lower, upper=upper)
    parametrization.random_state = np.random.RandomState(seed)
    optimizer = ng.optimizers.NGOpt(parametrization=parametrization, budget=budget)
    with warnings.catch_warnings():  # scipy's COBYLA, which NGOpt may pick, warns about its own defaults
        warnings.filterwarnings("ignore", message=".*RHOEND.*", category=UserWarning)
        recommendation = optimizer.minimize(objective)
    return np.asarray(recommendation.value, dtype=np.float64)


def combine(base: ParamDict, vectors: list[ParamDict], weights: np.ndarray) -> ParamDict:
    """phi_0 + sum_i w_i tau_i."""
    return base + ParamDict.weighted_sum(vectors, [float(w) for w in weights])


@dataclass
class LoraHubParams:
    budget: int = param(40, "number of objective evaluations by NGOpt, >= 1")
    lower: float = param(-1.5, "lower bound of each weight w_i")
    upper: float = param(1.5, "upper bound of each weight w_i")
    l1: float = param(0.05, "weight of the mean |w_i| penalty, >= 0")
    examples_per_task: int = param(64, "validation examples per task in the objective, >= 1")
    batch_size: int = param(32, "examples per loss evaluation batch, >= 1")
    split: str = param("validation", "split the objective reads: train or validation (test labels are never read)")
    seed: int = param(0, "seed of nevergrad's random state")


class LoraHub(Method):
    """Gradient-free search of task-vector weights on a few validation examples."""

    name = "lorahub"
    description = "LoraHub: weights of the task vectors found by nevergrad on validation loss + L1"
    reference = (
        "Huang et al., LoraHub: Efficient Cross-Task Generalization via Dynamic LoRA Composition, "
        "COLM 2024 (arXiv 2307.13269)"
    )
    version = "1"
    Params = LoraHubParams
    grid: dict[str, list[Any]] = {}
    needs_data = True
    data_needs = "the task pool's labelled loss of merged models (gradient-free search); any pool"

    def validate(self) -> None:
        p = self.params
        check_range(self.name, "budget", p.budget, 1, 100_000)
        check_range(self.name, "lower", p.lower, -100.0, 100.0)
        check_range(self.name, "upper", p.upper, -100.0, 100.0)
        if not p.lower < p.upper:
            raise ConfigError(f"method {self.name!r}: lower={p.lower} must be below upper={p.upper}")
        if not p.lower <= 0.0 <= p.upper:
            raise ConfigError(
                f"method {self.name!r}: lower={p.lower}, upper={p.upper} must enclose the search's start "
                f"w = 0 (lower <= 0 <= upper)"
            )
        check_range(self.name, "l1", p.l1, 0.0, float("inf"))
        check_range(self.name, "examples_per_task", p.examples_per_task, 1, 10_000_000)
        check_range(self.name, "batch_size", p.batch_size, 1, 1_000_000)
        check_labelled_split(self.name, p.split)

    def data_use(self) -> DataUse:
        return DataUse(self.params.split, self.params.examples_per_task, labels=True)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        p = self.params
        if data is None:
            raise ConfigError(f"method {self.name!r} needs a task pool for its validation loss; pass taskpool=NAME")
        base, vectors = load_task_vectors(self, pool)
        batches = {task: data.examples(task, self.data_use(), p.batch_size, self.name) for task in pool.tasks}

        def objective(weights: np.ndarray) -> float:
            model = pool.model(combine(base, vectors, weights))
            with torch.no_grad():
                losses = [
                    np.mean([float(data.loss(model, batch, task)) for batch in batches[task]]) for task in pool.tasks
                ]
            return float(np.mean(losses)) + p.l1 * float(np.mean(np.abs(weights)))

        weights = lorahub_weights(objective, len(vectors), p.budget, p.lower, p.upper, p.seed)
        return combine(base, vectors, weights)
