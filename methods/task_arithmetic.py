"""Task arithmetic (Ilharco et al., "Editing models with task arithmetic", ICLR 2023).

theta = theta_0 + lambda * sum_t tau_t with tau_t = theta_t - theta_0. Default lambda 0.3
(FusionBench's fixed default); the L-LoRA paper sweeps lambda in {0, 0.05, ..., 1.0}.
The sum is accumulated tensor by tensor in place, no task vector stored
(``fusionbench.methods.elementwise``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from fusionbench.api.method import Method, check_range, param
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.common import load_inputs
from fusionbench.methods.elementwise import combine, finite_or_blame
from fusionbench.models.streaming import stream_merge


def task_arithmetic_merge(base: ParamDict, vectors: Sequence[ParamDict], scaling_factor: float, finetuned: bool = False) -> ParamDict:
    """theta_0 + lambda * sum_t tau_t, tensor by tensor; with ``finetuned`` the vectors are the theta_t and
    tau_t = theta_t - theta_0 is taken chunk by chunk, never stored (``fusionbench.methods.elementwise``)."""
    return ParamDict(
        {
            name: combine([vector[name] for vector in vectors], tensor if finetuned else None, scaling_factor, tensor)
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
    tensorwise = True

    def validate(self) -> None:
        check_range(self.name, "scaling_factor", self.params.scaling_factor, -10.0, 10.0)

    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        base, thetas = load_inputs(self, pool, finite=False)
        merged = task_arithmetic_merge(base, thetas, self.params.scaling_factor, finetuned=True)
        return finite_or_blame(merged, thetas, pool.tasks, base)


def stream_task_arithmetic(base: str | Path, finetuned: Sequence[str | Path], out: str | Path, scaling_factor: float) -> Path:
    """theta_0 + lambda * sum_t (theta_t - theta_0) over safetensors checkpoints, streamed tensor by tensor."""

    return stream_merge([base, *finetuned], out, lambda tensors: combine(tensors[1:], tensors[0], scaling_factor, tensors[0]))
