"""AdaMerging (Yang et al., "AdaMerging: Adaptive Model Merging for Multi-Task Learning",
ICLR 2024): task arithmetic whose coefficients are learned, at test time, from unlabeled
test inputs.

    theta(lambda) = theta_0 + sum_t lambda_t tau_t          (granularity=task)
    theta(lambda)_k = theta_0,k + sum_t lambda_k,t tau_t,k  (granularity=layer: one lambda per
                                                             parameter tensor k and task, as
                                                             the official code)

Every lambda starts at 0.3 and is clamped to [0, 1] when used (official code). Each step
sums over tasks the mean Shannon entropy H(softmax(logits)) of the merged model's class
scores on one batch of that task's test inputs and takes one Adam step (lr 1e-3, betas
(0.9, 0.999), no weight decay) on the lambdas; the merged weights (the pool's
``module_parameters``: whole weights, or the adapted layers' folded LoRA / L-LoRA weights) enter
the pool's one resident model through ``torch.func.functional_call``. Tensors no task moves stay
outside the graph, and a frozen prefix of the model (submodules with no moving tensor, e.g. the
embeddings and first block that the mini world's fine-tuning froze) runs once per batch, its
outputs reused (``constant_outputs_reused``): the same arithmetic, done once. On a text-to-text
pool the classes are the task's label words. The official loop runs 500
steps and, per step and task, sums the mean entropies of two shuffled batches of 16; Adam
being invariant to the loss's scale, that is the mean entropy of 32 inputs, so a batch here
holds 32 inputs, taken in a fixed order from the first ``examples_per_task`` test inputs
(default: every one) and cycled. Labels are never read; the merge adapts to the inputs it is
then evaluated on, which every report flags (test-time adaptation).
Defaults: granularity layer, init 0.3, lr 1e-3, 500 steps, batch 32.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional, Sequence

import torch
from torch import nn

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import DataUse, TaskPool
from fusionbench.methods.common import check_choice
from fusionbench.methods.data_based import class_scores, constant_outputs_reused, pool_inputs, resident

GRANULARITIES = ("task", "layer")


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy of softmax(logits) over the batch."""
    log_p = torch.log_softmax(logits, dim=-1)
    return -(log_p.exp() * log_p).sum(-1).mean()


class MergedParams:
    """theta(lambda): theta_0,k + sum_t lambda_k,t tau_t,k for (tensors, tasks) lambdas, or lambda_t for (tasks,) ones.

    Only the tensors some task moves depend on lambda (their task vectors stacked, one (tasks, entries) matrix
    per tensor, so a tensor costs one product); the others are theta_0's, outside the autograd graph. The rows
    of layer-wise lambdas follow ``base``'s tensor order.
    """

    def __init__(self, base: ParamDict, vectors: Sequence[ParamDict]) -> None:
        self.base = base
        self.tasks = len(vectors)
        rows = {name: k for k, name in enumerate(base)}
        self.moving = {
            name: (rows[name], torch.stack([vector[name].reshape(-1) for vector in vectors]))
            for name, tensor in base.items()
            if tensor.is_floating_point() and any(bool(vector[name].any()) for vector in vectors)
        }

    def __call__(self, coefficients: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = coefficients.expand(len(self.base), self.tasks) if coefficients.dim() == 1 else coefficients
        out = dict(self.base)
        for name, (k, stacked) in self.moving.items():
            tensor = self.base[name]
            out[name] = tensor + (rows[k].to(tensor.dtype) @ stacked).view(tensor.shape)
        return out


@dataclass
class EntropyObjective:
    """sum_t mean entropy of the merged model's class scores on a batch of task t, as a function of lambda."""

    data: TaskPool
    model: Any  # the evaluated model around the resident module
    module: nn.Module  # the resident module whose parameters are the pool's
    merged: MergedParams
    batches: dict[str, list[Any]]  # task -> unlabeled batches
    to_module: Callable[[ParamDict], Mapping[str, torch.Tensor]] = dict  # the pool's module_parameters

    def __call__(self, coefficients: torch.Tensor, step: int) -> torch.Tensor:
        params = self.to_module(ParamDict(self.merged(coefficients.clamp(0.0, 1.0))))
        losses = []
        for task, batches in self.batches.items():
            batch = batches[step % len(batches)]
            losses.append(entropy(class_scores(self.data, self.model, self.module, params, batch, task)))
        return torch.stack(losses).sum()


def adamerging_coefficients(objective: EntropyObjective, shape: tuple[int, ...], init: float, lr: float, steps: int) -> torch.Tensor:
    """The lambdas after ``steps`` Adam steps on ``objective`` from ``init`` (unclamped; clamp when used)."""
    raw = torch.full(shape, init, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([raw], lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
    for step in range(steps):
        optimizer.zero_grad()
        with torch.enable_grad():
            objective(raw, step).backward()
        optimizer.step()
    return raw.detach()


@dataclass
class AdaMergingParams:
    granularity: str = param("layer", "one lambda per task (task) or per task and parameter tensor (layer)")
    init: float = param(0.3, "initial lambda of every task vector, in [0, 1]")
    lr: float = param(1e-3, "Adam learning rate of the lambdas, > 0")
    steps: int = param(500, "Adam steps, >= 0 (0: task arithmetic at init)")
    batch_size: int = param(32, "test inputs per task and step (the official two batches of 16), >= 1")
    examples_per_task: Optional[int] = param(None, "the first N test inputs per task the batches cycle through; null: every one")


class AdaMerging(Method):
    """Task arithmetic with lambdas learned by entropy minimisation on unlabeled test inputs."""

    name = "adamerging"
    description = "AdaMerging: task-wise or layer-wise task arithmetic lambdas learned by test-time entropy minimisation"
    reference = "Yang et al., AdaMerging: Adaptive Model Merging for Multi-Task Learning, ICLR 2024 (arXiv 2310.02575)"
    version = "1"
    Params = AdaMergingParams
    grid = {"granularity": ["task", "layer"], "lr": [1e-3, 1e-2]}
    needs_data = True
    data_needs = "entropy of the class scores (CLIP classes; T5: label words); full, lora, llora pools"

    def validate(self) -> None:
        p = self.params
        check_choice(self.name, "granularity", p.granularity, GRANULARITIES)
        check_range(self.name, "init", p.init, 0.0, 1.0)
        check_range(self.name, "lr", p.lr, 0.0, 10.0, low_open=True)
        check_range(self.name, "steps", p.steps, 0, 10_000_000)
        check_range(self.name, "batch_size", p.batch_size, 1, 1_000_000)
        if p.examples_per_task is not None:
            check_range(self.name, "examples_per_task", p.examples_per_task, 1, 10_000_000)

    def data_use(self) -> DataUse:
        return DataUse("test", self.params.examples_per_task, labels=False, test_time_adaptation=True)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        p = self.params
        data, base, thetas = pool_inputs(self, pool, data, "for its unlabeled test inputs")
        merged = MergedParams(base, [theta - base for theta in thetas])
        batches = {task: data.examples(task, self.data_use(), p.batch_size, self.name) for task in pool.tasks}
        model, module = resident(self, pool, base)
        objective = EntropyObjective(data, model, module, merged, batches, pool.module_parameters)
        shape = (len(thetas),) if p.granularity == "task" else (len(base), len(thetas))
        probe = pool.module_parameters(ParamDict(merged(torch.full(shape, p.init, requires_grad=True))))
        with constant_outputs_reused(module, {name for name, tensor in probe.items() if tensor.requires_grad}):
            coefficients = adamerging_coefficients(objective, shape, p.init, p.lr, p.steps).clamp(0.0, 1.0)
        with torch.no_grad():
            return ParamDict({name: tensor.to(base[name].dtype, copy=True) for name, tensor in merged(coefficients).items()})

