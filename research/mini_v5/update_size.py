"""How large a full pool's updates and merged updates are against the weights they move (issue 16).

    FUSIONBENCH_HOME=<a home with the built world> python research/mini_v5/update_size.py [lambda alpha [pool]]

Prints each task's ||tau_t|| / ||theta_0|| over the tensors full fine-tuning moves, and over the
moved 2-D weights: one update's share (the range over tasks), task arithmetic's merged update
lambda * sum_t tau_t, and Iso-C's alpha * sigma_bar U V^T per weight (Marczak et al., ICML 2025),
each as a share of those weights' norm. Defaults: lambda 0.45, alpha 1.75 (format 13's picks on
its vision pool), pool mini_clip_full (mini_t5_full: the text world's).
"""

from __future__ import annotations

import sys

import torch

import fusionbench
from fusionbench.methods.iso_c import iso_c_matrix


def norm(tensors: list[torch.Tensor]) -> float:
    """Frobenius norm of the tensors taken together."""
    return float(torch.sqrt(sum(t.double().pow(2).sum() for t in tensors)))


def main(scaling: float, alpha: float, pool_name: str) -> None:
    pool = fusionbench.load_pool(pool_name)
    base = pool.base()
    vectors = [pool.task_vector(t) for t in pool.tasks]
    moved = [n for n in base if bool(vectors[0][n].any())]
    print("update / moved weights: " + ", ".join(f"{t} {norm([v[n] for n in moved]) / norm([base[n] for n in moved]):.3f}" for t, v in zip(pool.tasks, vectors)))
    matrices = [n for n in moved if base[n].ndim == 2]
    weights = norm([base[n] for n in matrices])
    one = [norm([v[n] for n in matrices]) / weights for v in vectors]
    summed = norm([scaling * sum(v[n] for v in vectors) for n in matrices]) / weights
    flattened = norm([alpha * iso_c_matrix([v[n] for v in vectors]) for n in matrices]) / weights
    print(f"moved 2-D weights: one update {min(one):.3f}-{max(one):.3f}, task arithmetic at {scaling} {summed:.3f}, Iso-C at {alpha} {flattened:.3f}")


if __name__ == "__main__":
    scaling, alpha = (float(x) for x in sys.argv[1:3]) if len(sys.argv) > 2 else (0.45, 1.75)
    main(scaling, alpha, sys.argv[3] if len(sys.argv) > 3 else "mini_clip_full")
