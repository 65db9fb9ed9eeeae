"""Fisher merging (Matena & Raffel, "Merging Models with Fisher-Weighted Averaging", NeurIPS 2022).

Per task t, the diagonal empirical Fisher of the fine-tuned model theta_t on its own task,

    F_t = (1/N) sum_{i<N} (d log p(y_i | x_i; theta_t) / d theta_t)^2,

over the first N labelled examples of ``split`` (one example per backward pass), and per
entry the weighted average

    theta = sum_t w_t F'_t theta_t / sum_t w_t F'_t,   F'_t = max(F_t, floor),

with the official code's ``fisher_floor`` 1e-6 (applied to every model: no model is the
target here) and, by default, its ``normalize_fishers``: w_t = 1 / ||F_t||_2 over all
tensors (else w_t = 1). Equal Fishers give the simple average; tensors that no example's
gradient reaches (and non-float tensors) are averaged. The gradient is taken in the pool's own
parameters through the resident model: whole weights, or a LoRA / L-LoRA pool's adapters (their
dense updates with ``merge_space=delta``). p(y | x) is the task pool's ``class_logits`` softmax:
CLIP's zero-shot classes, or a text task's label words (``fusionbench.taskpools.text_scores``). Defaults: N = 256 train examples per task, floor 1e-6,
normalize true. In a sweep each task's Fisher is computed once per N and split and reused by
every subset and grid point (``fusionbench.api.derived``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Optional, Sequence

import torch
import torch.nn.functional as F

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import DataUse, TaskPool
from fusionbench.methods.common import mean_vector
from fusionbench.methods.data_based import check_labelled_split, class_scores, per_task, pool_inputs, resident

Fisher = dict[str, Optional[torch.Tensor]]  # None: no gradient reached the tensor


def fisher_merge(thetas: Sequence[ParamDict], fishers: Sequence[Fisher], floor: float, normalize: bool) -> ParamDict:
    """sum_t w_t max(F_t, floor) theta_t / sum_t w_t max(F_t, floor) per entry; the mean where a Fisher is None."""
    weights = [1.0] * len(fishers)
    if normalize:
        weights = [1.0 / max(float(torch.sqrt(sum((f.double() ** 2).sum() for f in fisher.values() if f is not None))), 1e-300) for fisher in fishers]
    out = ParamDict()
    for name, first in thetas[0].items():
        tensors = [theta[name] for theta in thetas]
        diagonals = [fisher[name] for fisher in fishers]
        if not first.is_floating_point() or any(d is None for d in diagonals):
            out[name] = mean_vector([t.double() for t in tensors]).to(first.dtype)
            continue
        scaled = [w * d.double().clamp_min(floor) for w, d in zip(weights, diagonals)]  # type: ignore[union-attr]
        merged = sum(s * t.double() for s, t in zip(scaled, tensors)) / sum(scaled)
        out[name] = merged.to(first.dtype)  # type: ignore[union-attr]
    return out


@dataclass
class FisherParams:
    examples_per_task: int = param(256, "N, the labelled examples per task the Fisher is estimated on, >= 1")
    split: str = param("train", "split the Fisher is estimated on: train or validation (test labels are never read)")
    floor: float = param(1e-6, "lower bound of every Fisher entry (the official fisher_floor), > 0")
    normalize: bool = param(True, "divide each task's Fisher by its L2 norm (the official normalize_fishers)")


class FisherMerging(Method):
    """Per-entry average of the fine-tuned models weighted by their diagonal Fishers."""

    name = "fisher"
    description = "Fisher merging: per-entry average weighted by each model's diagonal empirical Fisher"
    reference = "Matena & Raffel, Merging Models with Fisher-Weighted Averaging, NeurIPS 2022 (arXiv 2111.09832)"
    version = "1"
    Params = FisherParams
    grid = {"examples_per_task": [64, 256, 1024], "normalize": [True, False]}
    needs_data = True
    data_needs = "gradients of the labels' log-likelihood over the class scores (CLIP classes; T5: label words); full, lora, llora pools"

    def validate(self) -> None:
        p = self.params
        check_range(self.name, "examples_per_task", p.examples_per_task, 1, 10_000_000)
        check_labelled_split(self.name, p.split)
        check_range(self.name, "floor", p.floor, 0.0, 1.0, low_open=True)

    def data_use(self) -> DataUse:
        return DataUse(self.params.split, self.params.examples_per_task, labels=True)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        data, _, thetas = pool_inputs(self, pool, data, "to estimate the Fishers on")
        p = self.params
        fishers = [
            per_task(pool, data, ("fisher", task, p.split, p.examples_per_task), partial(self.fisher, pool, data, task, theta))
            for task, theta in zip(pool.tasks, thetas)
        ]
        return fisher_merge(thetas, fishers, p.floor, p.normalize)

    def fisher(self, pool: ModelPool, data: TaskPool, task: str, theta: ParamDict) -> Fisher:
        """The diagonal empirical Fisher of ``theta`` on ``task``: mean squared per-example log-likelihood gradients."""
        examples = data.examples(task, self.data_use(), 1, self.name)
        model, module = resident(self, pool, theta)
        leaves = {name: t.detach().clone().requires_grad_(t.is_floating_point()) for name, t in theta.items()}
        trained = [name for name, leaf in leaves.items() if leaf.requires_grad]
        sums: dict[str, Any] = dict.fromkeys(trained)
        for batch in examples:
            with torch.enable_grad():
                scores = class_scores(data, model, module, pool.module_parameters(ParamDict(leaves)), batch, task)
                log_likelihood = F.log_softmax(scores.double(), dim=-1)
                label = int(data.label_classes(batch, task)[0])
                grads = torch.autograd.grad(log_likelihood[0, label], [leaves[n] for n in trained], allow_unused=True)
            for name, grad in zip(trained, grads):
                if grad is not None:
                    sums[name] = grad.double() ** 2 if sums[name] is None else sums[name] + grad.double() ** 2
        n = len(examples)
        return {name: (None if sums.get(name) is None else sums[name] / n) for name in theta}

