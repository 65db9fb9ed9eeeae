"""What the analyses write: CSV tables, heatmaps and curve plots (each file written atomically), and their output folders."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
from omegaconf import DictConfig, OmegaConf

from fusionbench.api.modelpool import ModelPool
from fusionbench.api.plugins import MODELPOOLS
from fusionbench.engine.build import resolve_device
from fusionbench.utils.jsonio import write_json_atomic
from fusionbench.utils.paths import check_writable, user_path


# ------------------------------------------------------------------ outputs
def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Let ``write`` fill a temporary file beside ``path``, then rename it into place."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def matrix_csv(labels: list[str], matrix: np.ndarray) -> str:
    """A labelled square matrix as CSV (first row and column: the labels)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["task", *labels])
    for label, row in zip(labels, matrix):
        writer.writerow([label, *(f"{v:.6f}" for v in row)])
    return buffer.getvalue()


def heatmap(
    path: Path, matrix: np.ndarray, xlabels: list[str], ylabels: list[str], title: str, xlabel: str, ylabel: str, colorbar: str, annotate: bool,
    diverging: bool = False,
) -> None:
    """A heatmap PNG; ``diverging``: a blue-white-red scale centred on zero (for changes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    size = max(4.0, 0.55 * max(len(xlabels), len(ylabels)) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    reach = float(np.nanmax(np.abs(matrix))) or 1.0
    scale: dict[str, Any] = {"cmap": "coolwarm", "vmin": -reach, "vmax": reach} if diverging else {"cmap": "viridis"}
    image = ax.imshow(matrix, origin="upper" if annotate else "lower", aspect="equal", **scale)
    ax.set_xticks(range(len(xlabels)), xlabels, rotation=45 if annotate else 0, ha="right" if annotate else "center")
    ax.set_yticks(range(len(ylabels)), ylabels)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    if annotate:
        middle = (np.nanmin(matrix) + np.nanmax(matrix)) / 2
        for i in range(matrix.shape[0]):
            for j in range(matrix.shape[1]):
                light = diverging or matrix[i, j] > middle
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=8, color="black" if light else "white")
    fig.colorbar(image, ax=ax, label=colorbar, shrink=0.8)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def curves_csv(tasks: list[str], lambdas: list[float], curves: dict[str, np.ndarray]) -> str:
    """One row per curve and task: curve, task, then the score at each lambda."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["curve", "task", *(f"{lam:g}" for lam in lambdas)])
    for name, matrix in curves.items():
        for task, row in zip(tasks, matrix):
            writer.writerow([name, task, *(f"{v:.6f}" for v in row)])
    return buffer.getvalue()


def curves_plot(path: Path, tasks: list[str], lambdas: list[float], curves: dict[str, np.ndarray], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (name, matrix), heading in zip(axes, curves.items(), ("each task vector alone", "sum of all task vectors")):
        for task, row in zip(tasks, matrix):
            ax.plot(lambdas, row, marker="o", markersize=3, linewidth=1, label=task)
        ax.plot(lambdas, matrix.mean(axis=0), color="black", linewidth=2.5, label="mean")
        ax.set_title(heading)
        ax.set_xlabel("λ")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("score on the task")
    axes[1].legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)


def interference_csv(tasks: list[str], numbers: dict[str, np.ndarray]) -> str:
    """One row per task scored: base, the change under each task vector alone, own gain, cost
    from the others, additive prediction and the score under the sum."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["task", "base", *(f"change_by_{t}" for t in tasks), "own_gain", "cross_change", "additive", "sum"])
    for j, task in enumerate(tasks):
        row = [numbers["base"][j], *numbers["change"][:, j], numbers["own"][j], numbers["cross"][j], numbers["additive"][j], numbers["sum"][j]]
        writer.writerow([task, *(f"{v:.6f}" for v in row)])
    return buffer.getvalue()


def analysis_output_dir(cfg: DictConfig, kind: str) -> Path:
    if cfg.output_dir:
        return user_path(cfg.output_dir)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("outputs") / f"analysis-{stamp}-{kind}-{cfg.modelpool.name}"


def analysis_pool(cfg: DictConfig, device: str) -> ModelPool:
    return MODELPOOLS.get(cfg.modelpool.type)(cfg.modelpool, device=device)  # type: ignore[no-any-return]


def start_analysis(cfg: DictConfig, kind: str) -> tuple[str, Path]:
    device = resolve_device(cfg.device)
    out = analysis_output_dir(cfg, kind)
    check_writable(out)
    return device, out


def finish_analysis(out: Path, cfg: DictConfig, name: str, result: dict[str, Any]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    write_json_atomic(out / name, result)
