"""Sweep: every task subset x hyper-parameter grid (L-LoRA paper, Section 5.1 protocol).

For each subset of the pool's tasks and each grid point: merge, evaluate on the subset's
tasks' validation split, select the grid point with the best mean validation score
(ties: the first in grid order), and evaluate that point on the test split. Individual
fine-tuned and pretrained scores are computed once per task and reused for
normalisation. Every evaluation lands in the result store, so a re-run computes only
what is missing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fusionbench.aggregate import summarize
from fusionbench.cache import home
from fusionbench.config import config_hash
from fusionbench.errors import ConfigError, FusionBenchError, choices_text, did_you_mean
from fusionbench.executors import FINETUNED, PRETRAINED, Job, JobResult, LocalExecutor, RayExecutor, Worker
from fusionbench.method import Method
from fusionbench.modelpool import ModelPool
from fusionbench.report import provenance, write_json_atomic
from fusionbench.runner import build, check_writable, resolve_device
from fusionbench.store import Result, ResultKey, ResultStore
from fusionbench.taskpool import TaskPool


@dataclass
class RayOptions:
    address: Optional[str] = None  # "auto" for an existing cluster; null starts a local one
    actors: int = 2
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0


@dataclass
class SweepSchema:
    """Top-level keys of ``fusionbench sweep``."""

    method: Any = None
    modelpool: Any = None
    taskpool: Any = None
    subsets: str = "all"  # all | pairs | full | size=K
    grid: dict[str, Any] = field(default_factory=dict)  # overrides of the method's default grid, e.g. grid.k=[0.2,0.5]
    executor: str = "local"  # local | ray
    workers: int = 1  # local worker processes (1 = this process)
    threads: int = 0  # torch threads per worker (0: cores / workers in worker processes, torch's default in-process)
    ray: RayOptions = field(default_factory=RayOptions)
    store: Optional[str] = None  # default $FUSIONBENCH_HOME/results.sqlite
    output_dir: Optional[str] = None  # default outputs/sweep-<timestamp>-<method>-<pool>
    selection_split: str = "validation"
    report_split: str = "test"
    seed: int = 0
    device: str = "auto"
    plugins: list[str] = field(default_factory=list)


# Top-level keys that change where and how fast a sweep runs, never its results (left out of the config hash).
_NOT_RESULTS = ("output_dir", "store", "executor", "workers", "threads", "ray")


def enumerate_subsets(tasks: list[str], spec: str) -> list[tuple[str, ...]]:
    """Task subsets for ``spec``: all (every subset of >= 2 tasks: 2^n - n - 1), pairs, full, size=K."""
    n = len(tasks)
    if spec == "all":
        sizes = range(2, n + 1)
    elif spec == "pairs":
        sizes = range(2, 3)
    elif spec == "full":
        sizes = range(n, n + 1)
    elif spec.removeprefix("size=").isdigit():
        k = int(spec.removeprefix("size="))
        if not 2 <= k <= n:
            raise ConfigError(f"subsets={spec!r} asks for {k} tasks but the pool has {n}; choose a size from 2 to {n}")
        sizes = range(k, k + 1)
    else:
        raise ConfigError(f"subsets={spec!r} is not valid; choose all, pairs, full or size=K")
    if n < 2 and spec != "full":
        raise ConfigError(f"the pool has {n} task(s); subsets={spec} needs at least 2")
    return [combo for k in sizes for combo in itertools.combinations(tasks, k)]


def grid_points(method_cls: type[Method], base: Any, overrides: dict[str, Any]) -> list[dict[str, Any]]:
    """The cartesian product of the method's grid with ``overrides`` applied, validated point by point."""
    names = list(asdict(base))
    for key, values in overrides.items():
        if key not in names:
            raise ConfigError(f"grid.{key}: method {method_cls.name!r} has no parameter {key!r}.{did_you_mean(key, names)} Valid: {choices_text(names)}")
        if not isinstance(values, (list, tuple)) or not values:
            raise ConfigError(f"grid.{key} must be a non-empty list of values, e.g. grid.{key}=[0.25,0.5]")
    grid = {**method_cls.grid, **{k: list(v) for k, v in overrides.items()}}
    if any(not values for values in grid.values()):
        empty = next(k for k, v in grid.items() if not v)
        raise ConfigError(f"the grid of {empty!r} is empty; give values with grid.{empty}=[...]")
    points = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    for point in points:
        method_cls(replace(base, **point))  # validate() raises ConfigError for out-of-range values
    return points


class Plan:
    """The keys and jobs of one sweep."""

    def __init__(self, cfg: DictConfig, pool: ModelPool, taskpool: TaskPool, method: Method) -> None:
        self.cfg, self.pool, self.taskpool, self.method = cfg, pool, taskpool, method
        self.pool_identity = pool.identity()
        self.taskpool_identity = taskpool.identity()

    def job(self, point: dict[str, Any], subset: tuple[str, ...], split: str) -> Job:
        """The job merging with every method parameter (defaults and overrides) and ``point`` applied."""
        params = tuple(sorted(asdict(replace(self.method.params, **point)).items()))
        return Job(self.method.name, params, subset, split)

    def key(self, job: Job, task: str) -> ResultKey:
        if job.method in (FINETUNED, PRETRAINED):
            name, version = job.method, ""
        else:
            name, version = self.method.name, self.method.version
        return ResultKey(
            name, version, dict(job.params), str(self.cfg.modelpool.name), self.pool_identity,
            str(self.cfg.taskpool.name), self.taskpool_identity, job.subset, task, job.split, int(self.cfg.seed),
        )

    def results(self, result: JobResult) -> list[Result]:
        return [
            Result(self.key(result.job, task), s["metric"], s["value"], s["n"], s["stderr"], result.seconds)
            for task, s in result.scores.items()
        ]


def _executor(cfg: DictConfig, config: dict[str, Any], resident: Worker) -> LocalExecutor | RayExecutor:
    if cfg.executor == "local":
        return LocalExecutor(config, cfg.workers, cfg.threads, resident=resident)
    if cfg.executor == "ray":
        r = cfg.ray
        return RayExecutor(config, r.address, r.actors, r.cpus_per_actor, r.gpus_per_actor, cfg.threads)
    raise ConfigError(f"executor={cfg.executor!r} is not valid; choose local or ray")


def _run_jobs(jobs: list[Job], plan: Plan, store: ResultStore, executor: LocalExecutor | RayExecutor, progress: Progress, label: str) -> int:
    """Run the jobs whose rows are missing from the store; returns how many were computed."""
    missing = [j for j in jobs if not all(store.has(plan.key(j, t)) for t in j.subset)]
    task = progress.add_task(label, total=len(jobs), completed=len(jobs) - len(missing))
    for result in executor.map(missing):
        if result.error:
            raise FusionBenchError(result.error)
        store.put_many(plan.results(result))
        progress.advance(task)
    return len(missing)


def _execute(
    plan: Plan, store: ResultStore, executor: LocalExecutor | RayExecutor, subsets: list[tuple[str, ...]], points: list[dict[str, Any]]
) -> tuple[dict[tuple[str, ...], dict[str, Any]], int, int]:
    """Reference models, then validation of every grid point, then the selected points on the report split.

    Returns the selected point per subset, the number of evaluations and how many were computed.
    """
    cfg = plan.cfg
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    phases = [[Job(kind, (), (t,), cfg.report_split) for kind in (FINETUNED, PRETRAINED) for t in plan.pool.tasks]]
    if len(points) > 1:
        phases.append([plan.job(p, s, cfg.selection_split) for s in subsets for p in points])
    computed = total = 0
    with Progress(*columns) as progress:
        for jobs, label in zip(phases, ("reference models", f"{cfg.selection_split} (select)")):
            computed += _run_jobs(jobs, plan, store, executor, progress, label)
            total += len(jobs)
        best = {s: select_best(plan, store, s, points, cfg.selection_split) for s in subsets}
        final = [plan.job(best[s], s, cfg.report_split) for s in subsets]
        computed += _run_jobs(final, plan, store, executor, progress, f"{cfg.report_split} (report)")
    return best, total + len(final), computed


def default_store() -> Path:
    return home() / "results.sqlite"


def sweep(cfg: DictConfig) -> dict[str, Any]:
    """Run (or resume) a sweep and return its summary (also written as summary.json)."""
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    for key in ("selection_split", "report_split"):
        if cfg[key] not in ("train", "validation", "test"):
            raise ConfigError(f"{key}={cfg[key]!r} is not a split; choose train, validation or test")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = Path(cfg.output_dir or f"outputs/sweep-{stamp}-{cfg.method.name}-{cfg.modelpool.name}").expanduser()
    check_writable(out)
    pool, taskpool, method = build(cfg, device)
    subsets = enumerate_subsets(pool.tasks, cfg.subsets)
    points = grid_points(type(method), method.params, OmegaConf.to_container(cfg.grid))  # type: ignore[arg-type]
    method.check_pool(pool.subset(list(subsets[0])))  # the smallest subset
    plan = Plan(cfg, pool, taskpool, method)
    config = OmegaConf.to_container(cfg, resolve=True)
    config["device"] = device  # type: ignore[index]

    executor = _executor(cfg, config, Worker(pool, taskpool, method, int(cfg.seed)))  # type: ignore[arg-type]
    try:
        with ResultStore(cfg.store or default_store(), writer=True) as store:
            best, total, computed = _execute(plan, store, executor, subsets, points)
            summary = summarize(plan, store, subsets, best, points, cfg)
    finally:
        executor.close()
    summary["counts"] = {"evaluations": total, "computed": computed, "cached": total - computed}
    summary["wall_seconds"] = time.perf_counter() - started
    summary["provenance"] = provenance(device, int(cfg.seed), config, config_hash(cfg, exclude=_NOT_RESULTS))  # type: ignore[arg-type]
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    write_json_atomic(out / "summary.json", summary)
    summary["output_dir"] = str(out)
    return summary


def select_best(plan: Plan, store: ResultStore, subset: tuple[str, ...], points: list[dict[str, Any]], split: str) -> dict[str, Any]:
    """The grid point with the best mean score over the subset's tasks on ``split`` (first wins ties)."""
    if len(points) == 1:
        return points[0]
    best_point, best_score = points[0], float("-inf")
    for point in points:
        job = plan.job(point, subset, split)
        values = [store.get(plan.key(job, t)) for t in subset]
        mean = sum(v.value for v in values if v is not None) / len(subset)
        if mean > best_score:
            best_point, best_score = point, mean
    return best_point


def load_summary(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise ConfigError(f"sweep summary {str(path)!r} does not exist; give a sweep output directory or its summary.json")
    return json.loads(path.read_text())
