"""Simple averaging (ModelSoup, Wortsman et al., ICML 2022; AdapterSoup, Chronopoulou et al., 2023).

theta = (1/T) sum_t theta_t, i.e. task arithmetic with lambda = 1/T. No parameters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import load_finetuned
from fusionbench.methods.elementwise import combine, finite_or_blame
from fusionbench.models.streaming import stream_merge


class SimpleAverage(Method):
    """Mean of the fine-tuned parameters."""

    name = "simple_average"
    description = "mean of the fine-tuned parameters (ModelSoup / AdapterSoup)"
    reference = "Wortsman et al., Model soups, ICML 2022 (arXiv 2203.05482)"
    version = "1"
    tensorwise = True

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        thetas = load_finetuned(self, pool, finite=False)
        return finite_or_blame(ParamDict({name: mean_tensor([theta[name] for theta in thetas]) for name in thetas[0]}), thetas, pool.tasks)


def mean_tensor(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """(1/T) sum_t tensors[t], accumulated in place (``fusionbench.methods.elementwise``)."""
    return combine(tensors, scale=1.0 / len(tensors))


def stream_average(checkpoints: Sequence[str | Path], out: str | Path) -> Path:
    """The element-wise mean of safetensors checkpoints, streamed tensor by tensor."""
    return stream_merge(checkpoints, out, mean_tensor)
