"""The TaskPool contract: evaluators that turn a model into per-task scores, plus data access.

``evaluate`` returns a :class:`TaskScore` per task (metric, value, n, standard error).

The data-access contract of data-based methods (LoraHub, Fisher, RegMean, AdaMerging): a method
declares a :class:`DataUse` (which split, how many examples per task, whether it reads labels,
whether it adapts at test time) and reads a task's examples only through
:meth:`TaskPool.examples`, which enforces it: the pool must have the task, the split must hold at
least that many examples (the first ones, in the pool's fixed order, are used), a test split is
never read with labels, and batches of a method that declared no labels carry none. On those
batches ``loss`` is a differentiable objective and ``labels`` the labels (both need labelled
batches), ``class_logits`` the model's class scores (it reads no label) and ``label_classes`` the class
each label names. Every report of a data-based method records its DataUse.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Iterator, Optional

import torch
from omegaconf import MISSING, OmegaConf

from fusionbench.api.errors import ConfigError, DataError, FusionBenchError, check_unique, choices_text

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class DataUse:
    """What a data-based method reads of a task pool, per task (shown by ``fusionbench list methods``, kept in reports)."""

    split: str  # one of SPLITS
    examples_per_task: Optional[int]  # the first N examples of the split, exactly; None: every example
    labels: bool  # whether the method reads the examples' labels (never on the test split)
    test_time_adaptation: bool = False  # the merge adapts to the inputs it is then evaluated on

    def describe(self) -> str:
        """One line, e.g. ``train split, 256 examples per task, labels``."""
        count = "every example" if self.examples_per_task is None else f"{self.examples_per_task} examples per task"
        text = f"{self.split} split, {count}, {'labels' if self.labels else 'no labels'}"
        return text + (", test-time adaptation" if self.test_time_adaptation else "")


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

    def class_logits(self, model: Any, batch: Any, task: str) -> torch.Tensor:
        """(B, classes) scores of ``model`` for the inputs of ``batch`` of ``task``; differentiable, reads no label.

        Fisher merging, RegMean and AdaMerging need them; task pools that can give them override this.
        """
        raise FusionBenchError(
            f"task pool {self.config.name!r} ({self.name}) does not expose class scores, which this method needs; "
            f"choose a task pool that does (clip_vision, glue, dummy)"
        )

    def label_classes(self, batch: Any, task: str) -> torch.Tensor:
        """The column of ``class_logits`` that each label of a labelled ``batch`` names (1-D); by default the labels."""
        return self.labels(batch)

    def size(self, batch: Any) -> int:
        """The number of examples in ``batch``."""
        return len(batch)

    def labels(self, batch: Any) -> torch.Tensor:
        """The labels of a labelled ``batch`` (1-D); task pools override it."""
        raise FusionBenchError(f"task pool {self.config.name!r} ({self.name}) does not expose its batches' labels, which this method needs")

    def unlabeled(self, batch: Any) -> Any:
        """``batch`` without its labels (what methods that declared ``labels=False`` receive); task pools override it."""
        raise FusionBenchError(
            f"task pool {self.config.name!r} ({self.name}) cannot serve its examples without labels, which this method "
            f"needs; choose a task pool that implements unlabeled()"
        )

    def examples(self, task: str, use: DataUse, batch_size: int, method: str) -> list[Any]:
        """The first ``use.examples_per_task`` examples of ``task``'s ``use.split`` in batches: the one way methods
        read data (see the module docstring). ``method`` names the reader in error messages."""
        if task not in self.tasks:
            raise DataError(
                f"method {method!r} needs data of task {task!r} but task pool {self.config.name!r} has none (its tasks: "
                f"{choices_text(self.tasks)}); choose a task pool with every task of the model pool"
            )
        if use.split not in SPLITS:
            raise ConfigError(f"method {method!r}: split={use.split!r} is not a split; choose one of {', '.join(SPLITS)}")
        if use.split == "test" and use.labels:
            raise ConfigError(
                f"method {method!r} reads labels, and test labels are never read by a merge; choose method.split=train or validation"
            )
        wanted = use.examples_per_task
        batches = list(self.batches(task, use.split, batch_size, wanted))
        found = sum(self.size(batch) for batch in batches)
        if found < (wanted or 1):
            raise DataError(
                f"method {method!r} needs {wanted or 'some'} {use.split} examples of task {task!r} but task pool {self.config.name!r} "
                f"has {found} (taskpool.limit={self.config.limit}); lower method.examples_per_task to at most {found} or choose another split"
            )
        return batches if use.labels else [self.unlabeled(batch) for batch in batches]

    def predict(self, model: Any, task: str, split: str = "test") -> torch.Tensor:
        """Predicted labels of ``model`` for the examples of a task's split (1-D, in ``batches`` order, honouring ``config.limit``).

        Used by analyses that compare predictions (weight disentanglement error); task pools override it.
        """
        raise FusionBenchError(f"task pool {self.config.name!r} ({self.name}) does not expose predictions; choose a task pool that implements predict()")

    def identity(self) -> dict[str, Any]:
        """What determines this task pool's results: type, name, version, limit and every key the pool's ``Config``
        adds to TaskPoolConfig (a key that changes a score must key the reference-score cache); ``tasks``,
        ``batch_size`` and ``requires`` say what is asked and how, not how it is scored."""
        own = [f.name for f in fields(self.Config) if f.name not in BASE_KEYS]
        return {"type": self.name, "name": self.config.name, "version": self.version, "limit": self.config.limit, **{k: plain(getattr(self.config, k)) for k in own}}


BASE_KEYS = frozenset(f.name for f in fields(TaskPoolConfig))


def plain(value: Any) -> Any:
    """A config value as plain JSON-able containers (OmegaConf nodes and dataclasses unwrapped)."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value
