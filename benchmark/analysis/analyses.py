"""Analyses of a model pool: task-vector cosine similarity (L-LoRA paper, Figs. 2 and 8), weight
disentanglement error (Eq. 3, Fig. 6) and scores along the task vectors (task arithmetic's scaling).

* ``cosine``: the cosine similarity of every pair of task vectors tau_t = phi_t - phi_0
  (flattened over the pool's whole trainable parameter space), and its mean off-diagonal value.
* ``disentanglement``: for tasks a, b and a grid of coefficients,
  xi(l1, l2) = sum_{i in (a, b)} P_{x ~ task i}[ f(x; theta_0 + l1 tau_a + l2 tau_b) != f(x; theta_0 + l_i tau_i) ],
  the prediction disagreement of the two-task model with each single-task model (0 = perfectly
  disentangled). Predictions come from the task pool's ``predict``.
* ``scaling``: the score on task t of theta_0 + lambda tau_t (each task vector alone) and of
  theta_0 + lambda sum_s tau_s (task arithmetic over the whole pool) for a list of lambdas: where
  along its task vector a task's gain appears, and where the sum starts to interfere.
* ``interference``: at one lambda, the change of every task's score under each task vector alone
  (own gain on the diagonal, cost to the other tasks off it), the additive prediction
  base + own gain + sum of the costs, and the score under the sum (task arithmetic): whether a
  merge fails because the own gains are small or because the vectors hurt each other.

Each analysis writes its numbers (CSV / JSON), a PNG figure and the resolved config.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np
import torch
from omegaconf import DictConfig
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from fusionbench.analysis.results import CosineResult, DisentanglementResult, InterferenceResult, ScalingResult
from fusionbench.analysis.outputs import analysis_pool, curves_csv, curves_plot, finish_analysis, heatmap, interference_csv, matrix_csv, start_analysis, write_atomic
from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.plugins import TASKPOOLS
from fusionbench.api.taskpool import SPLITS
from fusionbench.api.words import word_list
from fusionbench.engine.report import benchmark_family

# Mean off-diagonal task-vector cosine similarity from the L-LoRA paper's released result files
# (seven tasks per family; also in the project's reference anchors, llora_paper.cosine_similarity_mean_offdiag).
PAPER_COSINE_MEAN_OFFDIAG: dict[str, dict[str, float]] = {
    "flan-t5-base": {"full": 0.120, "lora": 0.293, "llora": 0.141},
    "clip-vit-base-patch16": {"full": 0.202, "lora": 0.233, "llora": 0.102},
}
DEFAULT_GRID = [round(-1.0 + 0.2 * i, 1) for i in range(11)]  # -1.0, -0.8, ..., 1.0
DEFAULT_LAMBDAS = [round(0.1 * i, 1) for i in range(11)]  # 0.0, 0.1, ..., 1.0
_CHUNK = 1 << 22  # elements per task and step when accumulating the Gram matrix


@dataclass
class _AnalysisSchema:
    """Top-level keys every ``fusionbench analyze`` command takes."""

    modelpool: Any = None
    output_dir: Optional[str] = None  # where the results go (default outputs/analysis-<timestamp>-<kind>-<pool>)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    plugins: list[str] = field(default_factory=list)  # plugin .py files or modules defining methods / pools, loaded first


@dataclass
class CosineSchema(_AnalysisSchema):
    """Top-level keys of ``fusionbench analyze cosine``."""


@dataclass
class _EvaluatingSchema(_AnalysisSchema):
    """Keys of the analyses that evaluate merged models on a task pool."""

    taskpool: Any = None
    split: str = "test"  # split the merged models are evaluated on


@dataclass
class DisentanglementSchema(_EvaluatingSchema):
    """Top-level keys of ``fusionbench analyze disentanglement``."""

    tasks: Any = None  # two tasks of the pool: a,b (or [a,b])
    grid: list[float] = field(default_factory=lambda: list(DEFAULT_GRID))  # coefficients for both l1 and l2


@dataclass
class ScalingSchema(_EvaluatingSchema):
    """Top-level keys of ``fusionbench analyze scaling``."""

    lambdas: list[float] = field(default_factory=lambda: list(DEFAULT_LAMBDAS))  # the scaling factors lambda


@dataclass
class InterferenceSchema(_EvaluatingSchema):
    """Top-level keys of ``fusionbench analyze interference``."""

    scaling_factor: float = 0.3  # lambda, as task arithmetic's scaling_factor (the paper's)


# ------------------------------------------------------------------ numbers
def gram(vectors: list[ParamDict]) -> torch.Tensor:
    """G[i, j] = <v_i, v_j> over all parameters, accumulated in float64 chunk by chunk."""
    first = vectors[0]
    for v in vectors[1:]:
        first.check_compatible(v)
    g = torch.zeros(len(vectors), len(vectors), dtype=torch.float64)
    for name in first:
        flat = [v[name].reshape(-1) for v in vectors]
        for start in range(0, flat[0].numel(), _CHUNK):
            block = torch.stack([f[start : start + _CHUNK] for f in flat]).to(torch.float64)
            g += (block @ block.T).cpu()
    return g


def cosine_matrix(pool: ModelPool) -> np.ndarray:
    """Cosine similarity of every pair of the pool's task vectors (0 where a vector is zero)."""
    g = gram([pool.task_vector(t) for t in pool.tasks])
    norms = g.diagonal().sqrt()
    denom = torch.outer(norms, norms)
    return torch.where(denom > 0, g / denom.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(g)).numpy()


def mean_offdiag(matrix: np.ndarray) -> float:
    """Mean of the entries off the diagonal."""
    n = matrix.shape[0]
    return float((matrix.sum() - np.trace(matrix)) / (n * n - n)) if n > 1 else float("nan")


def paper_cosine(family: str, mode: str) -> Optional[float]:
    """The paper's mean off-diagonal cosine for a model family and fine-tuning mode, when it has one."""
    return PAPER_COSINE_MEAN_OFFDIAG.get(family, {}).get(mode)


def disagreement(x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of positions where two prediction tensors differ (two NaNs, e.g. unparseable numbers, agree)."""
    same = x == y
    if x.is_floating_point():
        same |= x.isnan() & y.isnan()
    return int((~same).sum()) / len(y)


def disentanglement_error(
    pool: ModelPool, taskpool: Any, tasks: tuple[str, str], grid: list[float], split: str, step: Callable[[], None] = lambda: None
) -> dict[str, np.ndarray]:
    """xi(l1, l2) on the grid (row: l1 for tasks[0], column: l2 for tasks[1]) and its two per-task terms.
    ``step()`` runs after each of the (grid + 2) x grid merged models is evaluated."""
    a, b = tasks
    base, tau = pool.base(), {t: pool.task_vector(t) for t in tasks}

    def predict_each(params: ParamDict, *names: str) -> list[torch.Tensor]:
        model = pool.model(params)
        predictions = [taskpool.predict(model, name, split) for name in names]
        step()
        return predictions

    single = {t: [predict_each(base + tau[t] * lam, t)[0] for lam in grid] for t in tasks}
    terms = {t: np.zeros((len(grid), len(grid))) for t in tasks}
    for i, l1 in enumerate(grid):
        for j, l2 in enumerate(grid):
            on_a, on_b = predict_each(base + tau[a] * l1 + tau[b] * l2, a, b)
            terms[a][i, j] = disagreement(on_a, single[a][i])
            terms[b][i, j] = disagreement(on_b, single[b][j])
    return {"xi": terms[a] + terms[b], a: terms[a], b: terms[b]}


def scaling_curves(
    pool: ModelPool, taskpool: Any, lambdas: list[float], split: str, step: Callable[[], None] = lambda: None
) -> dict[str, np.ndarray]:
    """Scores (rows: the pool's tasks, columns: lambdas) of theta_0 + lambda tau_t on task t ("alone")
    and of theta_0 + lambda sum_s tau_s on task t ("sum"); one task vector is held at a time.
    ``step()`` runs after each of the (tasks + 1) x lambdas merged models is evaluated."""
    base, tasks = pool.base(), pool.tasks
    alone, summed = np.zeros((len(tasks), len(lambdas))), np.zeros((len(tasks), len(lambdas)))
    total: Optional[ParamDict] = None
    for i, task in enumerate(tasks):
        tau = pool.task_vector(task)
        for j, lam in enumerate(lambdas):
            alone[i, j] = taskpool.evaluate(pool.model(base + tau * lam), [task], split)[task].value
            step()
        total = tau if total is None else total + tau
    assert total is not None
    for j, lam in enumerate(lambdas):
        scores = taskpool.evaluate(pool.model(base + total * lam), tasks, split)
        summed[:, j] = [scores[t].value for t in tasks]
        step()
    return {"alone": alone, "sum": summed}


def interference(
    pool: ModelPool, taskpool: Any, lam: float, split: str, step: Callable[[], None] = lambda: None
) -> dict[str, np.ndarray]:
    """Scores on every task of the pool: ``base`` (theta_0), ``single`` (row t: theta_0 + lam tau_t)
    and ``sum`` (theta_0 + lam sum_t tau_t), ``change`` = single - base, and the additive
    decomposition of the sum:
    ``own`` = single[t, t] - base[t], ``cross`` = sum over s != t of (single[s, t] - base[t]),
    ``additive`` = base + own + cross. One task vector is held at a time; ``step()`` runs after
    each of the tasks + 2 evaluated models."""
    base, tasks = pool.base(), pool.tasks

    def scores(params: ParamDict) -> np.ndarray:
        result = taskpool.evaluate(pool.model(params), tasks, split)
        step()
        return np.array([result[t].value for t in tasks])

    at_base = scores(base)
    single = np.zeros((len(tasks), len(tasks)))
    total: Optional[ParamDict] = None
    for i, task in enumerate(tasks):
        tau = pool.task_vector(task)
        single[i] = scores(base + tau * lam)
        total = tau if total is None else total + tau
    assert total is not None
    change = single - at_base  # row: the vector added, column: the task scored
    own = np.diag(change).copy()
    cross = change.sum(axis=0) - own
    return {
        "base": at_base, "single": single, "change": change, "sum": scores(base + total * lam),
        "own": own, "cross": cross, "additive": at_base + own + cross,
    }


# ------------------------------------------------------------------ commands
def analyze_cosine(cfg: DictConfig) -> CosineResult:
    """Task-vector cosine matrix of a pool: cosine.csv, cosine.png, cosine.json in the output directory."""
    device, out = start_analysis(cfg, "cosine")
    pool = analysis_pool(cfg, device)
    if len(pool.tasks) < 2:
        raise ConfigError(f"pool {cfg.modelpool.name!r} has {len(pool.tasks)} task(s); the cosine matrix needs at least 2")
    matrix = cosine_matrix(pool)
    family = benchmark_family(cfg.modelpool)
    result = CosineResult(str(cfg.modelpool.name), family, pool.mode, pool.tasks, matrix.tolist(), mean_offdiag(matrix),
                          paper_cosine(family, pool.mode), str(out))
    finish_analysis(out, cfg, "cosine.json", result.to_dict())
    write_atomic(out / "cosine.csv", lambda tmp: tmp.write_text(matrix_csv(pool.tasks, matrix)))
    title = f"task-vector cosine similarity\n{cfg.modelpool.name} ({pool.mode}), mean off-diagonal {result.mean_offdiag:.3f}"
    heatmap(out / "cosine.png", matrix, pool.tasks, pool.tasks, title, "", "", "cosine similarity", annotate=True)
    return result


def _two_tasks(value: Any, pool: ModelPool) -> tuple[str, str]:
    if value is None:
        raise ConfigError(f"analyze disentanglement needs two tasks: tasks=a,b with tasks of the pool: {choices_text(pool.tasks)}")
    names = word_list(value)
    for name in names:
        if name not in pool.tasks:
            raise ConfigError(f"tasks: pool has no task {name!r}.{did_you_mean(name, pool.tasks)} Valid tasks: {choices_text(pool.tasks)}")
    if len(names) != 2 or names[0] == names[1]:
        raise ConfigError(f"tasks={','.join(names)} must name two different tasks, e.g. tasks={','.join(pool.tasks[:2])}")
    return names[0], names[1]


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ConfigError(f"split={split!r} is not a split; choose one of {', '.join(SPLITS)}")


def _coefficients(values: Any, key: str, example: str) -> list[float]:
    """The list of task-vector coefficients under ``key``, checked a non-empty list of finite numbers."""
    problem = f"{key} must be a non-empty list of finite numbers (got {key}={values}), e.g. {key}={example}"
    try:
        coefficients = [float(v) for v in values]
    except (TypeError, ValueError):
        raise ConfigError(problem) from None
    if not coefficients or not all(np.isfinite(coefficients)):
        raise ConfigError(problem)
    return coefficients


def _taskpool_for(cfg: DictConfig, device: str, tasks: list[str]) -> Any:
    """The configured task pool, checked to evaluate every task in ``tasks``."""
    taskpool = TASKPOOLS.get(cfg.taskpool.type)(cfg.taskpool, device=device)
    for task in tasks:
        if task not in taskpool.all_tasks():
            raise ConfigError(f"task pool {cfg.taskpool.name!r} cannot evaluate task {task!r}; pick the task pool of pool {cfg.modelpool.name!r}")
    return taskpool


def analyze_disentanglement(cfg: DictConfig) -> DisentanglementResult:
    """Weight disentanglement error of two tasks over a grid: disentanglement.json and disentanglement.png."""
    _check_split(cfg.split)
    grid = _coefficients(cfg.grid, "grid", "[-1,-0.5,0,0.5,1]")
    device, out = start_analysis(cfg, "disentanglement")
    pool = analysis_pool(cfg, device)
    a, b = _two_tasks(cfg.tasks, pool)
    taskpool = _taskpool_for(cfg, device, [a, b])
    with _progress() as progress:
        bar = progress.add_task(f"disentanglement {cfg.modelpool.name}", total=(len(grid) + 2) * len(grid))
        error = disentanglement_error(pool, taskpool, (a, b), grid, cfg.split, lambda: progress.advance(bar))
    result = DisentanglementResult(str(cfg.modelpool.name), pool.mode, str(cfg.taskpool.name), cfg.split, [a, b], grid, error["xi"].tolist(),
                                   {a: error[a].tolist(), b: error[b].tolist()}, float(error["xi"].mean()), str(out))
    finish_analysis(out, cfg, "disentanglement.json", result.to_dict())
    ticks = [f"{v:g}" for v in grid]
    title = f"weight disentanglement error, {cfg.modelpool.name} ({pool.mode})\n{a} vs {b}, mean {result.mean_xi:.3f}"
    heatmap(out / "disentanglement.png", error["xi"], ticks, ticks, title, f"λ2 ({b})", f"λ1 ({a})", "ξ(λ1, λ2)", annotate=False)
    return result


def analyze_scaling(cfg: DictConfig) -> ScalingResult:
    """Scores along each task vector and along their sum: scaling.json, scaling.csv and scaling.png."""
    _check_split(cfg.split)
    lambdas = _coefficients(cfg.lambdas, "lambdas", "[0,0.25,0.5,0.75,1]")
    device, out = start_analysis(cfg, "scaling")
    pool = analysis_pool(cfg, device)
    taskpool = _taskpool_for(cfg, device, pool.tasks)
    with _progress() as progress:
        bar = progress.add_task(f"scaling {cfg.modelpool.name}", total=(len(pool.tasks) + 1) * len(lambdas))
        curves = scaling_curves(pool, taskpool, lambdas, cfg.split, lambda: progress.advance(bar))
    per_task = {name: {t: row.tolist() for t, row in zip(pool.tasks, matrix)} for name, matrix in curves.items()}
    means = {name: matrix.mean(axis=0).tolist() for name, matrix in curves.items()}
    result = ScalingResult(str(cfg.modelpool.name), pool.mode, str(cfg.taskpool.name), cfg.split, pool.tasks, lambdas,
                           per_task["alone"], per_task["sum"], means["alone"], means["sum"], str(out))
    finish_analysis(out, cfg, "scaling.json", result.to_dict())
    write_atomic(out / "scaling.csv", lambda tmp: tmp.write_text(curves_csv(pool.tasks, lambdas, curves)))
    curves_plot(out / "scaling.png", pool.tasks, lambdas, curves, f"scores along the task vectors, {cfg.modelpool.name} ({pool.mode}), {cfg.split} split")
    return result


def analyze_interference(cfg: DictConfig) -> InterferenceResult:
    """Own gains and cross-task changes of the task vectors at one lambda: interference.json,
    interference.csv and interference.png."""
    _check_split(cfg.split)
    lam = float(cfg.scaling_factor)
    if not np.isfinite(lam):
        raise ConfigError(f"scaling_factor={lam} must be a finite number, e.g. scaling_factor=0.3")
    device, out = start_analysis(cfg, "interference")
    pool = analysis_pool(cfg, device)
    taskpool = _taskpool_for(cfg, device, pool.tasks)
    with _progress() as progress:
        bar = progress.add_task(f"interference {cfg.modelpool.name}", total=len(pool.tasks) + 2)
        numbers = interference(pool, taskpool, lam, cfg.split, lambda: progress.advance(bar))
    tasks = pool.tasks
    names = ("base", "own", "cross", "additive", "sum")
    result = InterferenceResult(
        str(cfg.modelpool.name), pool.mode, str(cfg.taskpool.name), cfg.split, tasks, lam,
        {t: dict(zip(tasks, row.tolist())) for t, row in zip(tasks, numbers["single"])},
        *(dict(zip(tasks, numbers[name].tolist())) for name in names), *(float(numbers[name].mean()) for name in names), str(out),
    )
    finish_analysis(out, cfg, "interference.json", result.to_dict())
    write_atomic(out / "interference.csv", lambda tmp: tmp.write_text(interference_csv(tasks, numbers)))
    title = f"score change under one task vector (λ={lam:g}), {cfg.modelpool.name} ({pool.mode}), {cfg.split} split"
    heatmap(out / "interference.png", numbers["change"], tasks, tasks, title, "task scored", "task vector added", "change of score", annotate=True, diverging=True)
    return result
