"""Sweep aggregates in the L-LoRA paper's layouts, their rich tables and PNG plots.

* Table 1: mean +- std over all subsets of the subset's mean normalised score;
* Fig. 5/10/11: the same grouped by the number of tasks;
* Table 5: per-task normalised scores of the full task set;
* Fig. 4: the pairwise scatter (normalised score of task i vs task j for each pair).

Standard deviations are population standard deviations (ddof = 0) over subsets.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from fusionbench.engine.references import References
from fusionbench.engine.report import benchmark_family
from fusionbench.engine.results import MethodInfo, Provenance
from fusionbench.engine.store import ResultStore
from fusionbench.engine.summary import Counts, Pair, Splits, Stats, SubsetRow, SubsetScore, Summary, SweptPool, SweptTaskPool
from fusionbench.sweep.plan import Plan


def summarize(plan: Plan, store: ResultStore, references: References, subsets: list[tuple[str, ...]], best: dict[tuple[str, ...], dict[str, Any]],
              points: list[dict[str, Any]], cfg: DictConfig, counts: Counts, wall_seconds: float, provenance: Provenance) -> Summary:
    """Aggregate the stored test rows of a sweep into the paper's tables."""
    split = cfg.report_split
    tasks = plan.pool.tasks
    finetuned = {t: references.finetuned[t].value for t in tasks}
    pretrained = {t: references.pretrained[t].value for t in tasks}
    rows = []
    for subset in subsets:
        job = plan.job(best[subset], subset, split)
        per_task = {}
        for task in subset:
            result = store.get(plan.key(job, task))
            assert result is not None
            per_task[task] = SubsetScore(result.metric, result.value, result.stderr, result.n, result.value / finetuned[task] if finetuned[task] else None)
        normalized = [r.normalized for r in per_task.values() if r.normalized is not None]
        mean_normalized = statistics.fmean(normalized) if normalized else None
        rows.append(SubsetRow(list(subset), best[subset], per_task, statistics.fmean(r.score for r in per_task.values()), mean_normalized))
    valid = [r for r in rows if r.mean_normalized is not None]
    by_size = {str(size): Stats.of([r.mean_normalized for r in valid if len(r.tasks) == size]) for size in sorted({len(r.tasks) for r in valid})}  # type: ignore[misc]
    full = next((r for r in rows if len(r.tasks) == len(tasks)), None)
    parameters = {k: v for k, v in asdict(plan.method.params).items() if all(k not in p for p in points)}
    return Summary(
        method=MethodInfo(plan.method.name, plan.method.version, plan.method.reference, parameters),
        modelpool=SweptPool(str(cfg.modelpool.name), plan.pool.mode, plan.pool.family, benchmark_family(cfg.modelpool)),
        taskpool=SweptTaskPool(str(cfg.taskpool.name), cfg.taskpool.limit),
        subsets_spec=cfg.subsets,
        grid=points,
        splits=Splits(cfg.selection_split, split),
        finetuned=finetuned,
        pretrained=pretrained,
        subsets=rows,
        table1=Stats.of([r.mean_normalized for r in valid]) if valid else None,  # type: ignore[misc]
        by_size=by_size,
        full_set={t: v.normalized for t, v in full.scores.items()} if full else None,
        pairs=[Pair(r.tasks, [r.scores[t].normalized for t in r.tasks]) for r in rows if len(r.tasks) == 2],
        counts=counts,
        wall_seconds=wall_seconds,
        provenance=provenance,
    )


def _cell(stats: Stats | None) -> str:
    return "-" if not stats else f"{stats.mean:.3f} ± {stats.std:.3f}"


def render_summary(summary: Summary, console: Console | None = None) -> None:
    console = console or Console()
    title = f"{summary.method.name} on {summary.modelpool.name} ({summary.modelpool.mode}), subsets={summary.subsets_spec}"
    table = Table(title=title)
    for column in ("tasks in subset", "subsets", "normalized mean ± std"):
        table.add_column(column, justify="right")
    for size, stats in summary.by_size.items():
        table.add_row(size, str(stats.n), _cell(stats))
    table.add_section()
    table.add_row("all", str(summary.table1.n) if summary.table1 else "0", _cell(summary.table1))
    console.print(table)
    if summary.full_set:
        full = Table(title="full task set (normalized, Table 5 layout)")
        for task in summary.full_set:
            full.add_column(task, justify="right")
        full.add_row(*(f"{v:.3f}" if v is not None else "-" for v in summary.full_set.values()))
        console.print(full)
    counts = summary.counts
    console.print(f"evaluations: {counts.evaluations} ({counts.computed} computed, {counts.cached} from the store); wall time {summary.wall_seconds:.1f}s")


def compare_table(summaries: list[Summary]) -> Table:
    """Table 1 layout: one row per method, one column per pool, cells mean ± std of normalised scores."""
    pools = list(dict.fromkeys(s.modelpool.name for s in summaries))
    methods = list(dict.fromkeys(s.method.name for s in summaries))
    cells = {(s.method.name, s.modelpool.name): s.table1 for s in summaries}
    table = Table(title="normalized score, mean ± std over subsets (Table 1 layout)")
    table.add_column("method")
    for pool in pools:
        table.add_column(pool, justify="right")
    for method in methods:
        table.add_row(method, *(_cell(cells.get((method, pool))) for pool in pools))
    return table


def plot_summary(summary: Summary, out: Path) -> list[Path]:
    """by_size.png (Fig. 5 layout) and, when pairs were swept, pairs.png (Fig. 4 layout)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    if summary.by_size:
        sizes = [int(k) for k in summary.by_size]
        means = [v.mean for v in summary.by_size.values()]
        stds = [v.std for v in summary.by_size.values()]
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.errorbar(sizes, means, yerr=stds, marker="o", capsize=3)
        ax.set_xlabel("number of tasks")
        ax.set_ylabel("normalized score")
        ax.set_title(f"{summary.method.name} on {summary.modelpool.name}")
        ax.set_xticks(sizes)
        fig.tight_layout()
        fig.savefig(out / "by_size.png", dpi=120)
        plt.close(fig)
        written.append(out / "by_size.png")
    if summary.pairs:
        fig, ax = plt.subplots(figsize=(4, 4))
        xs = [p.normalized[0] for p in summary.pairs]
        ys = [p.normalized[1] for p in summary.pairs]
        ax.scatter(xs, ys, s=14)
        ax.plot([0, 1.1], [0, 1.1], lw=0.5, color="grey")
        ax.set_xlabel("normalized score, task i")
        ax.set_ylabel("normalized score, task j")
        ax.set_title(f"pairs: {summary.method.name} on {summary.modelpool.name}")
        fig.tight_layout()
        fig.savefig(out / "pairs.png", dpi=120)
        plt.close(fig)
        written.append(out / "pairs.png")
    return written
