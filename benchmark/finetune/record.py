"""What a fine-tune writes beside its checkpoint (``finetune.json``, schema ``fusionbench.finetune/1``), as a dataclass.

``FinetuneRecord.to_dict`` is the JSON the schema ``fusionbench/schemas/finetune.schema.json``
describes; ``FinetuneRecord.from_dict`` reads one back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Mapping, Optional

from fusionbench.api.taskpool import TaskScore
from fusionbench.config.recipe import Recipe
from fusionbench.engine.results import FINETUNE, from_fields


@dataclass(frozen=True)
class EvalScore:
    """The fine-tuned model's score on one split of its task (``eval_split``)."""

    split: str
    metric: str
    value: float
    n: int
    stderr: float
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, split: str, score: TaskScore) -> EvalScore:
        return cls(split, **asdict(score))


@dataclass(frozen=True)
class CodeVersion:
    """The FusionBench version and git revision that trained the model."""

    fusionbench: str
    git_revision: Optional[str]


@dataclass(frozen=True)
class FinetuneRecord:
    """What one fine-tune trained, how, on which data and with which code."""

    SCHEMA: ClassVar[str] = FINETUNE

    model: str
    family: str
    task: str
    mode: str
    recipe: Recipe
    seed: int
    limit: Optional[int]
    steps: int
    micro_batch_size: int
    trained_parameters: int
    final_loss: float  # mean of the last 10 steps' losses
    eval: Optional[EvalScore]
    seconds: float  # training time, summed over resumed invocations
    taskpool: dict[str, Any]  # TaskPool.identity() of the training data
    code_version: CodeVersion
    packages: dict[str, str]
    device: str
    date: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FinetuneRecord:
        """The record a ``finetune.json`` holds."""
        recipe, score = Recipe.from_dict(data["recipe"]), None if data["eval"] is None else EvalScore(**data["eval"])
        return replace(from_fields(cls, data), recipe=recipe, eval=score, code_version=from_fields(CodeVersion, data["code_version"]))

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``finetune.json`` (its kind under ``format``)."""
        return {"format": self.SCHEMA, **asdict(self)}
