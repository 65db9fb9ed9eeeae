"""The run report (schema ``fusionbench.report/1``): scores, normalisation, cost, provenance, as a dataclass.

``normalized = merged score / individual fine-tuned score of the same fine-tuning mode``
(L-LoRA paper, Section 5.1). ``Report.to_dict`` is the ``report.json`` the JSON Schema
``fusionbench/schemas/report.schema.json`` describes; ``Report.from_dict`` reads one back.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Mapping, Optional

from rich.console import Console
from rich.table import Table

from fusionbench.api.taskpool import TaskScore
from fusionbench.engine.results import REPORT, MethodInfo, Provenance, from_fields
from fusionbench.utils.frames import data_frame

SCHEMA = REPORT
_MODE_SUFFIX = re.compile(r"[_-](full|lora|llora)$")
AVERAGED = ("score", "finetuned", "pretrained", "normalized")  # the columns averaged over tasks


def benchmark_family(modelpool: Mapping[str, Any]) -> str:
    """The benchmark a pool config belongs to, across modes: its ``variant`` when set, else its name without a mode suffix."""
    variant = modelpool.get("variant")
    return str(variant) if variant else _MODE_SUFFIX.sub("", str(modelpool["name"]))


def normalized(score: float, finetuned: float) -> float | None:
    """merged / fine-tuned, or None when the fine-tuned score is zero."""
    return score / finetuned if finetuned else None


def mean(values: list[float | None]) -> float | None:
    """The mean of the values that are not None (None when there are none)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


@dataclass(frozen=True)
class TaskRow:
    """One task of a report: the merged model's score (with n and stderr), the reference scores, the normalised score."""

    metric: str
    score: float
    n: int
    stderr: float
    finetuned: float
    pretrained: float
    normalized: Optional[float]
    extra: Optional[dict[str, Any]] = None  # the task pool's extra figures (e.g. unparseable outputs), when any

    @classmethod
    def of(cls, merged: TaskScore, finetuned: TaskScore, pretrained: TaskScore) -> TaskRow:
        """The row of a task from its merged, fine-tuned and pretrained scores."""
        return cls(merged.metric, merged.value, merged.n, merged.stderr, finetuned.value, pretrained.value,
                   normalized(merged.value, finetuned.value), merged.extra or None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskRow:
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})

    def to_dict(self) -> dict[str, Any]:
        row = asdict(self)
        return row if self.extra else {k: v for k, v in row.items() if k != "extra"}


@dataclass(frozen=True)
class Averages:
    """Means over the tasks of a report (normalized: over the tasks that have one)."""

    score: Optional[float]
    finetuned: Optional[float]
    pretrained: Optional[float]
    normalized: Optional[float]

    @classmethod
    def of(cls, rows: Mapping[str, TaskRow]) -> Averages:
        return cls(*(mean([getattr(row, key) for row in rows.values()]) for key in AVERAGED))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Averages:
        return cls(*(data[key] for key in AVERAGED))

    def to_dict(self) -> dict[str, Optional[float]]:
        return asdict(self)


@dataclass(frozen=True)
class PoolInfo:
    """The model pool of a report: config name, fine-tuning mode, checkpoint family, benchmark (``benchmark_family``
    of its config), identity (what its checkpoints are)."""

    name: str
    mode: str
    family: str
    benchmark: str
    identity: dict[str, Any]


@dataclass(frozen=True)
class TaskPoolInfo:
    """The task pool of a report: config name, registered type, version, example limit, and the rest of its identity."""

    name: str
    type: str
    version: str
    limit: Optional[int]
    details: dict[str, Any] = field(default_factory=dict)  # the rest of TaskPool.identity() (datasets, templates, seeds)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskPoolInfo:
        """From the report's ``taskpool`` object, or ``{"name": config name, **TaskPool.identity()}``."""
        head = ("name", "type", "version", "limit")
        return cls(*(data[key] for key in head), {k: v for k, v in data.items() if k not in head})

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "version": self.version, "limit": self.limit, **self.details}


@dataclass(frozen=True)
class Cost:
    """What the run cost: merge and evaluation seconds, peak memory."""

    merge_seconds: float
    eval_seconds: float
    peak_memory_bytes: int


@dataclass(frozen=True)
class Report:
    """A run's report (schema ``fusionbench.report/1``), as ``fusionbench run`` writes it and the Python API returns it."""

    SCHEMA: ClassVar[str] = REPORT

    method: MethodInfo
    modelpool: PoolInfo
    taskpool: TaskPoolInfo
    split: str
    tasks: dict[str, TaskRow]  # task -> its row, in the pool's order
    average: Averages
    cost: Cost
    provenance: Provenance
    output_dir: Optional[str] = None  # the run directory (written into report.json, not part of the schema's contract)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The report a ``report.json`` holds (check it against the schema first: ``engine.results.result_problem``)."""
        return cls(
            method=MethodInfo.from_dict(data["method"]),
            modelpool=from_fields(PoolInfo, data["modelpool"]),
            taskpool=TaskPoolInfo.from_dict(data["taskpool"]),
            split=data["split"],
            tasks={task: TaskRow.from_dict(row) for task, row in data["tasks"].items()},
            average=Averages.from_dict(data["average"]),
            cost=from_fields(Cost, data["cost"]),
            provenance=Provenance.from_dict(data["provenance"]),
            output_dir=data.get("output_dir"),
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``report.json`` (``output_dir`` included when set)."""
        data = {
            "schema": self.SCHEMA,
            "method": self.method.to_dict(),
            "modelpool": asdict(self.modelpool),
            "taskpool": self.taskpool.to_dict(),
            "split": self.split,
            "tasks": {task: row.to_dict() for task, row in self.tasks.items()},
            "average": self.average.to_dict(),
            "cost": asdict(self.cost),
            "provenance": self.provenance.to_dict(),
        }
        return data if self.output_dir is None else {**data, "output_dir": self.output_dir}

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per task (method, pool, its checkpoint family, split, then the task's row); needs pandas."""
        meta = {"method": self.method.name, "modelpool": self.modelpool.name, "family": self.modelpool.family, "split": self.split}
        rows = [{**meta, "task": task, **{k: v for k, v in asdict(row).items() if k != "extra"}} for task, row in self.tasks.items()]
        return data_frame(rows, "Report.to_frame()")


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(report: Report, console: Console | None = None) -> None:
    """Print the report as a rich table: task, score +- stderr, fine-tuned, pretrained, normalised."""
    console = console or Console()
    pool = f"{report.modelpool.name} ({report.modelpool.family} checkpoints)"
    title = f"{report.method.name} on {pool} -> {report.taskpool.name} ({report.split} split)"
    table = Table(title=title)
    for column in ("task", "metric", "n", "score", "fine-tuned", "pretrained", "normalized"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for task, row in report.tasks.items():
        table.add_row(task, row.metric, str(row.n), f"{_fmt(row.score)} ± {_fmt(row.stderr)}", _fmt(row.finetuned), _fmt(row.pretrained), _fmt(row.normalized))
    avg = report.average
    table.add_section()
    table.add_row("average", "", "", _fmt(avg.score), _fmt(avg.finetuned), _fmt(avg.pretrained), _fmt(avg.normalized))
    console.print(table)
