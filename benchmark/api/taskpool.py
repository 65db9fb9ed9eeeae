"""The TaskPool contract: evaluators that turn a model into per-task scores, plus data access.

``evaluate`` returns a :class:`TaskScore` per task (metric, value, n, standard error).
``batches`` and ``loss`` give data-dependent methods (LoraHub, Fisher, RegMean,
AdaMerging) the examples of a task's split and a differentiable objective on them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Optional

import torch
from omegaconf import MISSING

from fusionbench.api.errors import ConfigError, FusionBenchError, check_unique, choices_text

SPLITS = ("train", "validation", "test")


@dataclass
class TaskPoolConfig:
    """Fields every task pool config has; task pools extend this dataclass."""

    type: str = MISSING
    name: str = ""
    tasks: list[str] = field(default_factory=list)  # empty: every task the pool defines
    limit: Optional[int] = None  # cap on examples per task and split (recorded in reports)
    batch_size: int = 64
    requires: Optional[str] = None  # a registered Requirement the engine builds before constructing the pool, e.g. mini_vision


@dataclass
class TaskScore:
    """One task's result: ``value`` of ``metric`` over ``n`` examples, with its standard error."""

    metric: str
    value: float
    n: int
    stderr: float
    extra: dict[str, Any] = field(default_factory=dict)


def binomial_stderr(accuracy: float, n: int) -> float:
    """sqrt(p (1 - p) / n), the standard error of an accuracy over n examples."""
    return math.sqrt(max(accuracy * (1.0 - accuracy), 0.0) / n) if n > 0 else float("nan")


class TaskPool(ABC):
    """Base class of every task pool."""

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str] = ""
    version: ClassVar[str] = "1"
    Config: ClassVar[type] = TaskPoolConfig

    def __init__(self, config: Any, device: str = "cpu") -> None:
        self.config = config
        self.device = device
        if config.limit is not None and config.limit <= 0:
            raise ConfigError(f"taskpool.limit must be a positive number of examples, got {config.limit}")
        if config.batch_size < 1:
            raise ConfigError(f"taskpool.batch_size must be a positive number of examples, got {config.batch_size}")
        check_unique(list(config.tasks), f"task pool {config.name!r}")
        unknown = [t for t in config.tasks if t not in self.all_tasks()]
        if unknown:
            raise ConfigError(
                f"task pool {config.name!r} has no task {unknown[0]!r}; valid tasks: {choices_text(self.all_tasks())}"
            )
        self.tasks: list[str] = list(config.tasks) or list(self.all_tasks())

    @abstractmethod
    def all_tasks(self) -> list[str]:
        """Every task this pool can evaluate."""

    @abstractmethod
    def evaluate(self, model: Any, tasks: list[str], split: str = "test") -> dict[str, TaskScore]:
        """Score ``model`` on each of ``tasks`` (``split`` in SPLITS), honouring ``config.limit``."""

    @abstractmethod
    def batches(self, task: str, split: str, batch_size: int, limit: Optional[int] = None) -> Iterator[Any]:
        """Labelled batches of a task's split, in a fixed order."""

    @abstractmethod
    def loss(self, model: Any, batch: Any, task: str) -> torch.Tensor:
        """A scalar, differentiable loss of ``model`` on ``batch`` of ``task``."""

    def predict(self, model: Any, task: str, split: str = "test") -> torch.Tensor:
        """Predicted labels of ``model`` for the examples of a task's split (1-D, in ``batches`` order, honouring ``config.limit``).

        Used by analyses that compare predictions (weight disentanglement error); task pools override it.
        """
        raise FusionBenchError(f"task pool {self.config.name!r} ({self.name}) does not expose predictions; choose a task pool that implements predict()")

    def identity(self) -> dict[str, Any]:
        """What determines this task pool's results."""
        return {"type": self.name, "name": self.config.name, "version": self.version, "limit": self.config.limit}
