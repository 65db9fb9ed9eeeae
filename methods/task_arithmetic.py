"""Task arithmetic (Ilharco et al., "Editing models with task arithmetic", ICLR 2023).

theta = theta_0 + lambda * sum_t tau_t with tau_t = theta_t - theta_0. Default lambda 0.3
(FusionBench's fixed default); the L-LoRA paper sweeps lambda in {0, 0.05, ..., 1.0}.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import load_task_vectors
from fusionbench.models.streaming import stream_merge


def task_arithmetic_tensor(base: torch.Tensor, vectors: Sequence[torch.Tensor], scaling_factor: float) -> torch.Tensor:
    """theta_0 + lambda * sum_t tau_t for one tensor."""
    return base + scaling_factor * torch.stack(list(vectors)).sum(dim=0)


def task_arithmetic_merge(base: ParamDict, vectors: Sequence[ParamDict], scaling_factor: float) -> ParamDict:
    """theta_0 + lambda * sum_t tau_t, tensor by tensor."""
    return ParamDict(
        {
            name: task_arithmetic_tensor(tensor, [tau[name] for tau in vectors], scaling_factor)
            for name, tensor in base.items()
        }
    )


@dataclass
class TaskArithmeticParams:
    scaling_factor: float = param(0.3, "lambda, the weight of the summed task vectors")


class TaskArithmetic(Method):
    """theta_0 + lambda * sum of task vectors."""

    name = "task_arithmetic"
    description = "base + lambda * sum of task vectors"
    reference = "Ilharco et al., Editing models with task arithmetic, ICLR 2023 (arXiv 2212.04089)"
    version = "1"
    Params = TaskArithmeticParams
    grid = {"scaling_factor": [round(0.05 * i, 2) for i in range(21)]}

    def validate(self) -> None:
        check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, vectors = load_task_vectors(self, pool)
        return task_arithmetic_merge(base, vectors, self.params.scaling_factor)


def stream_task_arithmetic(base: str | Path, finetuned: Sequence[str | Path], out: str | Path, scaling_factor: float) -> Path:
    """theta_0 + lambda * sum_t (theta_t - theta_0) over safetensors checkpoints, streamed tensor by tensor."""

    def combine(tensors: list[torch.Tensor]) -> torch.Tensor:
        theta0 = tensors[0]
        return task_arithmetic_tensor(theta0, [theta - theta0 for theta in tensors[1:]], scaling_factor)

    return stream_merge([base, *finetuned], out, combine)
