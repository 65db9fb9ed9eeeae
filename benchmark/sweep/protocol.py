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
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from fusionbench.api.errors import ConfigError, FusionBenchError
from fusionbench.config.compose import config_hash
from fusionbench.engine.build import build, resolve_device
from fusionbench.engine.executors import Job, LocalExecutor, RayExecutor, Worker
from fusionbench.engine.references import References, reference_scores
from fusionbench.engine.results import Provenance, check_result, result_problem
from fusionbench.engine.store import ResultStore, default_store
from fusionbench.engine.summary import Counts, Summary
from fusionbench.sweep.aggregate import summarize
from fusionbench.sweep.plan import Plan, enumerate_subsets, grid_points, select_best
from fusionbench.utils.jsonio import write_json_atomic
from fusionbench.utils.paths import check_writable, user_path
from fusionbench.utils.provenance import provenance


@dataclass
class RayOptions:
    address: Optional[str] = None  # the Ray cluster to join (auto: the running one; unset: start a local one)
    actors: int = 2  # Ray actors, each holding one resident model
    cpus_per_actor: float = 1.0  # CPUs Ray reserves per actor
    gpus_per_actor: float = 0.0  # GPUs Ray reserves per actor (fractions share one)


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
    selection_split: str = "validation"  # split the best grid point of each subset is selected on
    report_split: str = "test"  # split the selected point is reported on
    seed: int = 0  # global torch seed
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    plugins: list[str] = field(default_factory=list)  # plugin .py files or modules defining methods / pools, loaded first


# Top-level keys that change where and how fast a sweep runs, never its results (left out of the config hash).
_NOT_RESULTS = ("output_dir", "store", "executor", "workers", "threads", "ray")


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
) -> tuple[References, dict[tuple[str, ...], dict[str, Any]], int, int]:
    """Reference models (shared with ``run``), then validation of every grid point, then the selected points on the report split.

    Returns the reference scores, the selected point per subset, the number of evaluations and how many were computed.
    """
    cfg = plan.cfg
    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns) as progress:
        bar = progress.add_task("reference models", total=2 * len(plan.pool.tasks))
        references = reference_scores(plan.pool, plan.taskpool, plan.pool.tasks, cfg.report_split, lambda: progress.advance(bar))
        computed, total = references.computed, 2 * len(plan.pool.tasks)
        if len(points) > 1:
            jobs = [plan.job(p, s, cfg.selection_split) for s in subsets for p in points]
            computed += _run_jobs(jobs, plan, store, executor, progress, f"{cfg.selection_split} (select)")
            total += len(jobs)
        best = {s: select_best(plan, store, s, points, cfg.selection_split) for s in subsets}
        final = [plan.job(best[s], s, cfg.report_split) for s in subsets]
        computed += _run_jobs(final, plan, store, executor, progress, f"{cfg.report_split} (report)")
    return references, best, total + len(final), computed


def sweep(cfg: DictConfig) -> Summary:
    """Run (or resume) a sweep and return its summary (also written as summary.json)."""
    started = time.perf_counter()
    device = resolve_device(cfg.device)
    for key in ("selection_split", "report_split"):
        if cfg[key] not in ("train", "validation", "test"):
            raise ConfigError(f"{key}={cfg[key]!r} is not a split; choose train, validation or test")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    out = user_path(cfg.output_dir or f"outputs/sweep-{stamp}-{cfg.method.name}-{cfg.modelpool.name}")
    check_writable(out)
    pool, taskpool, method = build(cfg, device)
    subsets = enumerate_subsets(pool.tasks, cfg.subsets)
    points = grid_points(type(method), method.params, OmegaConf.to_container(cfg.grid))  # type: ignore[arg-type]
    method.check_pool(pool.subset(list(subsets[0])))  # the smallest subset
    plan = Plan(cfg, pool, taskpool, method)
    config = OmegaConf.to_container(cfg, resolve=True)
    config["device"] = device  # type: ignore[index]
    # the code and date the sweep starts with: a long sweep's results are those of the modules it loaded then
    origin = Provenance.from_dict(provenance(device, int(cfg.seed), config, config_hash(cfg, exclude=_NOT_RESULTS)))  # type: ignore[arg-type]

    executor = _executor(cfg, config, Worker(pool, taskpool, method, int(cfg.seed)))  # type: ignore[arg-type]
    try:
        with ResultStore(cfg.store or default_store(), writer=True) as store:
            try:
                references, best, total, computed = _execute(plan, store, executor, subsets, points)
            except BaseException:
                if store.count() == 0:  # nothing to resume from: leave no new store behind
                    store.close()
                    store.remove_created()
                raise
            counts = Counts(total, computed, total - computed)
            summary = summarize(plan, store, references, subsets, best, points, cfg, counts, time.perf_counter() - started, origin)
    finally:
        executor.close()
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    data = summary.to_dict()
    check_result(data, Summary.SCHEMA)
    write_json_atomic(out / "summary.json", data)
    return replace(summary, output_dir=str(out))


def load_summary(path: str | Path) -> Summary:
    """The summary of a sweep output folder or its summary.json; a ConfigError for anything else."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    if not path.is_file():
        raise ConfigError(f"sweep summary {str(path)!r} does not exist; give a sweep output directory or its summary.json")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"sweep summary {str(path)!r} is not valid JSON ({exc}); give the summary.json a sweep wrote") from None
    if not isinstance(data, dict) or data.get("schema") != Summary.SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(f"{str(path)!r} is not a sweep summary (schema {found!r}, expected {Summary.SCHEMA!r}); give the summary.json a sweep wrote")
    problem = result_problem(data, Summary.SCHEMA)
    if problem is not None:
        raise ConfigError(f"sweep summary {str(path)!r} does not match its schema ({problem}); re-run the sweep (it resumes from its store)")
    return Summary.from_dict(data, str(path.parent))
