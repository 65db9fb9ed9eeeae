"""TSV-M's orthogonalisation step on and off on the full vision pool: per-task test accuracy (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/tsv_steps.py 0.35 0.5 0.75 1.0

For each scaling factor given: TSV-M as shipped (``fusionbench.methods.tsv``), and the same
truncation (top ``rank // T`` singular components of each task's update) summed without the
Procrustes orthogonalisation of the stacked singular vectors.
"""

from __future__ import annotations

import sys
from typing import Sequence

import torch

import fusionbench
from fusionbench.methods import tsv
from fusionbench.methods.linalg import compute_dtype, svd


def truncated_sum(vectors: Sequence[torch.Tensor], min_rank: int = 0) -> torch.Tensor:
    """Sum over tasks of each update's top ``rank // T`` components, not orthogonalised."""
    dtype = compute_dtype(vectors[0])
    rank = max(min_rank, min(vectors[0].shape) // len(vectors))
    out = torch.zeros_like(vectors[0], dtype=dtype)
    for tau in vectors:
        u, s, v = svd(tau.to(dtype))
        out += (u[:, :rank] * s[:rank]) @ v[:, :rank].mT
    return out.to(vectors[0].dtype)


def main() -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    taskpool = fusionbench.load_taskpool("mini_vision7")
    shipped = tsv.tsv_matrix
    for name, matrix_fn in (("tsv", shipped), ("truncated sum", truncated_sum)):
        tsv.tsv_matrix = matrix_fn  # the method looks it up at merge time
        for alpha in map(float, sys.argv[1:]):
            merged = fusionbench.merge("tsv", pool, scaling_factor=alpha)
            scores = taskpool.evaluate(pool.model(merged), pool.tasks, "test")
            values = {task: 100 * scores[task].value for task in pool.tasks}
            cells = " ".join(f"{task} {value:.1f}" for task, value in values.items())
            print(f"{name:14s} alpha {alpha:.2f}: {cells}; mean {sum(values.values()) / len(values):.1f}", flush=True)
    tsv.tsv_matrix = shipped


if __name__ == "__main__":
    main()
