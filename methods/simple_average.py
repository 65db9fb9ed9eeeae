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
from fusionbench.models.streaming import stream_merge


class SimpleAverage(Method):
    """Mean of the fine-tuned parameters."""

    name = "simple_average"
    description = "mean of the fine-tuned parameters (ModelSoup / AdapterSoup)"
    reference = "Wortsman et al., Model soups, ICML 2022 (arXiv 2203.05482)"
    version = "1"

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        return ParamDict.mean(load_finetuned(self, pool))


def stream_average(checkpoints: Sequence[str | Path], out: str | Path) -> Path:
    """The element-wise mean of safetensors checkpoints, streamed tensor by tensor."""
    return stream_merge(checkpoints, out, lambda tensors: torch.stack(tensors).mean(dim=0))
