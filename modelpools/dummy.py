"""The dummy model pool: in-memory linear classifiers, the teachers of the dummy world.

For plumbing tests only (``modelpool=dummy``). Task t is "classify x by argmax(W_t x + b_t)";
its fine-tuned model *is* the teacher (W_t, b_t) = (W_0, b_0) + tau_t
(``fusionbench.utils.dummy_world``), so fine-tuned accuracy is 1, the base model is near
chance, and merged models fall in between.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from fusionbench.api.modelpool import ModelPool, ModelPoolConfig
from fusionbench.api.params import ParamDict
from fusionbench.utils.dummy_world import CLASSES, DIM, DUMMY_TASKS, teacher


@dataclass
class DummyModelPoolConfig(ModelPoolConfig):
    tasks: list[str] = field(default_factory=lambda: list(DUMMY_TASKS))
    seed: int = 0


class DummyModelPool(ModelPool):
    """Linear classifiers in memory (plumbing tests only)."""

    name = "dummy"
    description = "in-memory linear classifiers for plumbing tests (not a benchmark)"
    Config = DummyModelPoolConfig

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        self._module = nn.Linear(DIM, CLASSES).to(device)

    def all_tasks(self) -> list[str]:
        return list(self.config.tasks)

    @property
    def mode(self) -> str:
        return "full"

    def base(self) -> ParamDict:
        return teacher(None, self.config.seed)

    def finetuned(self, task: str) -> ParamDict:
        return teacher(task, self.config.seed)

    def model(self, params: ParamDict) -> nn.Module:
        ParamDict(dict(self._module.named_parameters())).check_compatible(params)
        with torch.no_grad():
            for name, p in self._module.named_parameters():
                p.copy_(params[name])
        return self._module

    def identity(self) -> dict[str, Any]:
        return {"type": self.name, "mode": self.mode, "seed": self.config.seed, "tasks": self.tasks}
