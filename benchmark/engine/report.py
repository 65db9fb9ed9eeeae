"""The run report (schema ``fusionbench.report/1``): scores, normalisation, cost, provenance.

``normalized = merged score / individual fine-tuned score of the same fine-tuning mode``
(L-LoRA paper, Section 5.1). The JSON Schema lives in ``fusionbench/schemas/report.schema.json``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from rich.console import Console
from rich.table import Table

from fusionbench.api.taskpool import TaskScore
from fusionbench.engine.results import REPORT
from fusionbench.utils.frames import data_frame

SCHEMA = REPORT
_MODE_SUFFIX = re.compile(r"[_-](full|lora|llora)$")


def benchmark_family(modelpool: Mapping[str, Any]) -> str:
    """The benchmark a pool config belongs to, across modes: its ``variant`` when set, else its name without a mode suffix."""
    variant = modelpool.get("variant")
    return str(variant) if variant else _MODE_SUFFIX.sub("", str(modelpool["name"]))


def normalized(score: float, finetuned: float) -> float | None:
    """merged / fine-tuned, or None when the fine-tuned score is zero."""
    return score / finetuned if finetuned else None


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def task_rows(
    merged: dict[str, TaskScore], finetuned: dict[str, TaskScore], pretrained: dict[str, TaskScore]
) -> dict[str, dict[str, Any]]:
    """The report's ``tasks`` object: one row per task with absolute and normalised scores."""
    rows = {}
    for task, score in merged.items():
        rows[task] = {
            "metric": score.metric,
            "score": score.value,
            "n": score.n,
            "stderr": score.stderr,
            "finetuned": finetuned[task].value,
            "pretrained": pretrained[task].value,
            "normalized": normalized(score.value, finetuned[task].value),
            **({"extra": score.extra} if score.extra else {}),
        }
    return rows


def averages(rows: dict[str, dict[str, Any]]) -> dict[str, float | None]:
    return {key: _mean([row[key] for row in rows.values()]) for key in ("score", "finetuned", "pretrained", "normalized")}


def _fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def render(report: dict[str, Any], console: Console | None = None) -> None:
    """Print the report as a rich table: task, score +- stderr, fine-tuned, pretrained, normalised."""
    console = console or Console()
    method = report["method"]
    title = f"{method['name']} on {report['modelpool']['name']} -> {report['taskpool']['name']} ({report['split']} split)"
    table = Table(title=title)
    for column in ("task", "metric", "n", "score", "fine-tuned", "pretrained", "normalized"):
        table.add_column(column, justify="left" if column in ("task", "metric") else "right")
    for task, row in report["tasks"].items():
        table.add_row(
            task, row["metric"], str(row["n"]), f"{_fmt(row['score'])} ± {_fmt(row['stderr'])}",
            _fmt(row["finetuned"]), _fmt(row["pretrained"]), _fmt(row["normalized"]),
        )
    avg = report["average"]
    table.add_section()
    table.add_row("average", "", "", _fmt(avg["score"]), _fmt(avg["finetuned"]), _fmt(avg["pretrained"]), _fmt(avg["normalized"]))
    console.print(table)


@dataclass(frozen=True)
class Report:
    """A run's report (schema ``fusionbench.report/1``) as the Python API returns it; ``data`` is the JSON written."""

    data: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    @property
    def tasks(self) -> dict[str, dict[str, Any]]:
        """task -> metric, score, n, stderr, finetuned, pretrained, normalized."""
        return self.data["tasks"]  # type: ignore[no-any-return]

    @property
    def average(self) -> dict[str, float | None]:
        return self.data["average"]  # type: ignore[no-any-return]

    def to_frame(self) -> Any:
        """A pandas DataFrame, one row per task (method, pool, split, then the task's row); needs pandas."""
        meta = {"method": self.data["method"]["name"], "modelpool": self.data["modelpool"]["name"], "split": self.data["split"]}
        columns = ("metric", "score", "n", "stderr", "finetuned", "pretrained", "normalized")
        return data_frame([{**meta, "task": task, **{c: row[c] for c in columns}} for task, row in self.tasks.items()], "Report.to_frame()")
