"""What a sweep evaluates: its task subsets, its grid points, the job and store key of each, and the selection rule."""

from __future__ import annotations

import itertools
from dataclasses import asdict, replace
from typing import Any

from omegaconf import DictConfig

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.taskpool import TaskPool
from fusionbench.engine.executors import Job, JobResult
from fusionbench.engine.store import Result, ResultKey, ResultStore


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
        return ResultKey(
            self.method.name, self.method.version, dict(job.params), str(self.cfg.modelpool.name), self.pool_identity,
            str(self.cfg.taskpool.name), self.taskpool_identity, job.subset, task, job.split, int(self.cfg.seed),
        )

    def results(self, result: JobResult) -> list[Result]:
        return [
            Result(self.key(result.job, task), s["metric"], s["value"], s["n"], s["stderr"], result.seconds)
            for task, s in result.scores.items()
        ]


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
