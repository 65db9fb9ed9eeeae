"""The dummy task pool: synthetic classification labelled by the dummy world's teachers (plumbing tests only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator, Optional

import torch
from torch import nn

from fusionbench.api.errors import ConfigError, DataError
from fusionbench.api.taskpool import TaskPool, TaskPoolConfig, TaskScore, binomial_stderr
from fusionbench.utils.dummy_world import DIM, DUMMY_TASKS, generator, teacher


@dataclass
class DummyTaskPoolConfig(TaskPoolConfig):
    seed: int = 0
    examples: int = 512


class DummyTaskPool(TaskPool):
    """Synthetic classification labelled by the dummy teachers (plumbing tests only)."""

    name = "dummy"
    description = "synthetic tasks labelled by the dummy pool's teachers (not a benchmark)"
    Config = DummyTaskPoolConfig

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        if config.examples < 1:
            raise ConfigError(f"taskpool.examples must be a positive number of examples per task and split, got {config.examples}")

    def all_tasks(self) -> list[str]:
        return list(DUMMY_TASKS)

    def _data(self, task: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        n = min(self.config.examples, self.config.limit or self.config.examples)
        x = torch.randn(n, DIM, generator=generator("data", task, split, self.config.seed))
        w = teacher(task, self.config.seed)
        return x, (x @ w["weight"].T + w["bias"]).argmax(-1)

    def predict(self, model: Any, task: str, split: str = "test") -> torch.Tensor:
        x, _ = self._data(task, split)
        with torch.no_grad():
            return model(x.to(self.device)).argmax(-1).cpu()

    def evaluate(self, model: Any, tasks: list[str], split: str = "test") -> dict[str, TaskScore]:
        scores = {}
        for task in tasks:
            _, y = self._data(task, split)
            accuracy = float((self.predict(model, task, split) == y).float().mean())
            scores[task] = TaskScore("accuracy", accuracy, len(y), binomial_stderr(accuracy, len(y)))
        return scores

    def batches(self, task: str, split: str, batch_size: int, limit: Optional[int] = None) -> Iterator[Any]:
        x, y = self._data(task, split)
        n = len(y) if limit is None else min(limit, len(y))
        for i in range(0, n, batch_size):
            yield x[i : min(i + batch_size, n)].to(self.device), y[i : min(i + batch_size, n)].to(self.device)

    def loss(self, model: Any, batch: Any, task: str) -> torch.Tensor:
        return nn.functional.cross_entropy(model(batch[0]), self.labels(batch))

    def class_logits(self, model: Any, batch: Any, task: str) -> torch.Tensor:
        return model(batch[0])

    def size(self, batch: Any) -> int:
        return len(batch[0])

    def labels(self, batch: Any) -> torch.Tensor:
        if batch[1] is None:
            raise DataError("this batch was served without labels (TaskPool.unlabeled); a method that reads labels must declare it in its DataUse")
        return batch[1]

    def unlabeled(self, batch: Any) -> Any:
        return batch[0], None
