"""The sweep summary (schema ``fusionbench.sweep/1``), as a dataclass: every task subset's selected grid point and
scores, and the L-LoRA paper's aggregates (Table 1, by number of tasks, full set, pairs).

``Summary.to_dict`` is the ``summary.json`` the JSON Schema ``fusionbench/schemas/sweep.schema.json``
describes; ``Summary.from_dict`` reads one back (the leaderboard and ``results compare`` do).
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping, Optional

from fusionbench.engine.results import SWEEP, MethodInfo, Provenance, from_fields


@dataclass(frozen=True)
class Stats:
    """Mean, population standard deviation (ddof = 0) and count of a set of normalised scores."""

    mean: float
    std: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(statistics.fmean(values), statistics.pstdev(values), len(values))


@dataclass(frozen=True)
class SubsetScore:
    """One task's score in one subset's merge, normalised by the task's fine-tuned score."""

    metric: str
    score: float
    stderr: float
    n: int
    normalized: Optional[float]


@dataclass(frozen=True)
class SubsetRow:
    """One task subset: the grid point selected for it, its tasks' scores on the report split and their means."""

    tasks: list[str]
    best: dict[str, Any]
    scores: dict[str, SubsetScore]
    mean_score: float
    mean_normalized: Optional[float]

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SubsetRow:
        scores = {task: from_fields(SubsetScore, row) for task, row in data["scores"].items()}
        return cls(list(data["tasks"]), dict(data["best"]), scores, data["mean_score"], data["mean_normalized"])


@dataclass(frozen=True)
class Pair:
    """A two-task subset's normalised scores (the paper's Fig. 4 scatter)."""

    tasks: list[str]
    normalized: list[Optional[float]]


@dataclass(frozen=True)
class SweptPool:
    """The model pool of a sweep: config name, fine-tuning mode, checkpoint family, benchmark (``benchmark_family`` of its config)."""

    name: str
    mode: str
    family: str
    benchmark: str


@dataclass(frozen=True)
class SweptTaskPool:
    """The task pool of a sweep: config name and example limit."""

    name: str
    limit: Optional[int]


@dataclass(frozen=True)
class Splits:
    """The split grid points are selected on and the split the selected point is reported on."""

    selection: str
    report: str


@dataclass(frozen=True)
class Counts:
    """Evaluations of a sweep: all it needed, those computed now, those found in the store."""

    evaluations: int
    computed: int
    cached: int


@dataclass(frozen=True)
class Summary:
    """A sweep's summary (schema ``fusionbench.sweep/1``)."""

    SCHEMA: ClassVar[str] = SWEEP

    method: MethodInfo  # parameters: the ones the grid does not vary
    modelpool: SweptPool
    taskpool: SweptTaskPool
    subsets_spec: str
    grid: list[dict[str, Any]]
    splits: Splits
    finetuned: dict[str, float]  # task -> individual fine-tuned score (report split)
    pretrained: dict[str, float]  # task -> pretrained score (report split)
    subsets: list[SubsetRow]
    table1: Optional[Stats]  # over all subsets with a normalised mean
    by_size: dict[str, Stats]  # number of tasks -> stats
    full_set: Optional[dict[str, Optional[float]]]  # task -> normalised score of the merge of every task
    pairs: list[Pair]
    counts: Counts
    wall_seconds: float
    provenance: Provenance
    output_dir: Optional[str] = None  # where the sweep wrote it (not part of summary.json)

    @property
    def full(self) -> Optional[SubsetRow]:
        """The subset of every task, when the sweep included it."""
        return next((row for row in self.subsets if len(row.tasks) == len(self.finetuned)), None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], output_dir: Optional[str] = None) -> Summary:
        """The summary a ``summary.json`` holds (check it against the schema first: ``engine.results.result_problem``)."""
        return cls(
            method=MethodInfo.from_dict(data["method"]),
            modelpool=from_fields(SweptPool, data["modelpool"]),
            taskpool=from_fields(SweptTaskPool, data["taskpool"]),
            subsets_spec=data["subsets_spec"],
            grid=[dict(point) for point in data["grid"]],
            splits=from_fields(Splits, data["splits"]),
            finetuned=dict(data["finetuned"]),
            pretrained=dict(data["pretrained"]),
            subsets=[SubsetRow.from_dict(row) for row in data["subsets"]],
            table1=None if data["table1"] is None else from_fields(Stats, data["table1"]),
            by_size={size: from_fields(Stats, stats) for size, stats in data["by_size"].items()},
            full_set=data["full_set"],
            pairs=[from_fields(Pair, pair) for pair in data["pairs"]],
            counts=from_fields(Counts, data["counts"]),
            wall_seconds=data["wall_seconds"],
            provenance=Provenance.from_dict(data["provenance"]),
            output_dir=output_dir,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``summary.json`` (no ``output_dir``)."""
        data = asdict(self)
        del data["output_dir"]
        data["method"] = self.method.to_dict(with_data=False)  # same place: the schema's method has no data
        return {"schema": self.SCHEMA, **data}
