"""RegMean (Jin et al., "Dataless Knowledge Fusion by Merging Weights of Language Models",
ICLR 2023).

For every linear layer y = x W^T + b of the model, with X_t the layer's inputs when the
fine-tuned model theta_t runs on the first N examples of task t's ``split`` (collected by a
forward hook; every token is a row) and G_t = X_t^T X_t / N its Gram matrix,

    W^T = (sum_t G~_t)^-1 sum_t G~_t W_t^T,   G~_t = alpha G_t + (1 - alpha) diag(G_t),

the weights minimising sum_t ||X_t W^T - X_t W_t^T||^2 when alpha = 1; alpha < 1 shrinks the
off-diagonal entries toward the diagonal (the official ``reduce_non_diagonal``). The system is
solved for the correction to the average of the W_t by least squares: where the summed Gram is
singular (an input no task's examples reach, e.g. a dead ReLU unit) the weights keep the average
there instead of the official inverse's failure, so one task still returns that task. Every other tensor
(biases, norms, embeddings, non-linear layers) is the average of the theta_t. Labels are not
read: a text-to-text model runs on the inputs with each of the task's label words as decoder input
(``TaskPool.class_logits``), and padded positions are rows too. On a LoRA / L-LoRA pool with
``merge_space=delta`` the merged tensors are the layers' dense updates D_t = W_t - W0: with W0
shared, the solve above gives W - W0 exactly. Defaults: alpha 0.9 (official), N = 256 train
examples per task. In a sweep each task's Grams are computed once per N, split and batch size
and reused by every subset and alpha (``fusionbench.api.derived``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Optional, Sequence

import torch
from torch import nn

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import SPLITS, DataUse, TaskPool
from fusionbench.methods.common import check_choice, mean_vector
from fusionbench.methods.data_based import per_task, pool_inputs, resident


def shrink_off_diagonal(gram: torch.Tensor, alpha: float) -> torch.Tensor:
    """alpha G + (1 - alpha) diag(G)."""
    return alpha * gram + (1.0 - alpha) * torch.diag(torch.diagonal(gram))


def regmean_matrix(weights: Sequence[torch.Tensor], grams: Sequence[torch.Tensor], alpha: float) -> torch.Tensor:
    """W with W^T = (sum_t G~_t)^-1 sum_t G~_t W_t^T for one (out, in) weight and its tasks' (in, in) Grams; solved as the
    average plus the least-squares (minimum-norm) correction, so input directions no task's inputs reach keep the average."""
    shrunk = [shrink_off_diagonal(g.double(), alpha) for g in grams]
    mean = mean_vector([w.double() for w in weights])
    rhs = sum(g @ (w.double() - mean).T for g, w in zip(shrunk, weights))
    correction = torch.linalg.lstsq(sum(shrunk), rhs, driver="gelsd").solution  # type: ignore[arg-type]
    return (mean + correction.T).to(weights[0].dtype)


def linear_layers(pool: ModelPool, module: nn.Module) -> dict[str, nn.Linear]:
    """Pool parameter name -> the Linear layer of ``module`` whose weight it is (or is added to), in the module's order."""
    linear = {(f"{path}." if path else "") + "weight": layer for path, layer in module.named_modules() if isinstance(layer, nn.Linear)}
    names = {weight: name for name, weight in pool.dense_weights().items()}
    return {names[weight]: layer for weight, layer in linear.items() if weight in names}


def regmean_merge(thetas: Sequence[ParamDict], grams: Sequence[dict[str, torch.Tensor]], alpha: float) -> ParamDict:
    """RegMean over whole ParamDicts: ``grams[t]`` maps a linear layer's weight name to its Gram on task t."""
    out = ParamDict()
    for name, first in thetas[0].items():
        tensors = [theta[name] for theta in thetas]
        if all(name in gram for gram in grams):
            out[name] = regmean_matrix(tensors, [g[name] for g in grams], alpha)
        else:
            out[name] = mean_vector([t.double() for t in tensors]).to(first.dtype)
    return out


@dataclass
class RegMeanParams:
    alpha: float = param(0.9, "scale of the Grams' off-diagonal entries, in [0, 1] (1: exact least squares)")
    examples_per_task: int = param(256, "N, the examples per task whose layer inputs form the Grams, >= 1")
    split: str = param("train", "split the Grams are computed on: train, validation or test (labels are not read; test is test-time adaptation)")
    batch_size: int = param(32, "examples per forward pass, >= 1")


class RegMean(Method):
    """Per linear layer, the weights that best reproduce every fine-tuned layer's outputs on its task's inputs."""

    name = "regmean"
    description = "RegMean: per linear layer, least squares on the tasks' input Gram matrices; the rest averaged"
    reference = "Jin et al., Dataless Knowledge Fusion by Merging Weights of Language Models, ICLR 2023 (arXiv 2212.09849)"
    version = "1"
    Params = RegMeanParams
    grid = {"alpha": [0.5, 0.7, 0.8, 0.9, 0.95, 1.0]}
    needs_data = True
    data_needs = "Linear layers' input Grams (T5: inputs with each label word as decoder input); full pools, lora / llora with merge_space=delta"

    def validate(self) -> None:
        p = self.params
        check_range(self.name, "alpha", p.alpha, 0.0, 1.0)
        check_range(self.name, "examples_per_task", p.examples_per_task, 1, 10_000_000)
        check_choice(self.name, "split", p.split, SPLITS)
        check_range(self.name, "batch_size", p.batch_size, 1, 1_000_000)

    def data_use(self) -> DataUse:
        split = self.params.split
        return DataUse(split, self.params.examples_per_task, labels=False, test_time_adaptation=split == "test")

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        data, _, thetas = self.inputs(pool, data)
        p = self.params
        grams = [
            per_task(pool, data, ("regmean", task, p.split, p.examples_per_task, p.batch_size), partial(self.grams, pool, data, task, theta))
            for task, theta in zip(pool.tasks, thetas)
        ]
        return regmean_merge(thetas, grams, p.alpha)

    def inputs(self, pool: ModelPool, data: TaskPool | None) -> tuple[TaskPool, ParamDict, list[ParamDict]]:
        """``pool_inputs`` of a pool whose Linear weights (or their dense updates) are its parameters."""
        found = pool_inputs(self, pool, data, "for the layers' inputs")
        if not pool.dense_weights():
            raise ConfigError(
                f"method {self.name!r} merges whole Linear weights, but pool {pool.config.name!r} (mode {pool.mode}) holds adapter "
                f"factors; set modelpool.merge_space=delta (each layer's dense update) or choose a pool of mode full"
            )
        return found

    def grams(self, pool: ModelPool, data: TaskPool, task: str, theta: ParamDict, only: Optional[set[str]] = None) -> dict[str, torch.Tensor]:
        """X^T X / N of every linear layer's inputs (rows: every token; ``only``: of those layers, by pool name) when
        ``theta`` runs on ``task``'s examples."""
        examples = data.examples(task, self.data_use(), self.params.batch_size, self.name)
        model, module = resident(self, pool, theta)
        layers = {name: layer for name, layer in linear_layers(pool, module).items() if only is None or name in only}
        grams: dict[str, Any] = dict.fromkeys(layers)

        def hook(name: str) -> Any:
            def record(layer: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
                rows = inputs[0].detach().reshape(-1, inputs[0].shape[-1]).double()
                grams[name] = rows.T @ rows if grams[name] is None else grams[name] + rows.T @ rows

            return record

        handles = [layer.register_forward_pre_hook(hook(name)) for name, layer in layers.items()]
        try:
            with torch.no_grad():
                for batch in examples:
                    data.class_logits(model, batch, task)
        finally:
            for handle in handles:
                handle.remove()
        n = sum(data.size(batch) for batch in examples)
        return {name: gram / n for name, gram in grams.items() if gram is not None}
