"""How much of each task's own update a merge carries, per weight of the full vision pool (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/iso_reach.py [lambda alpha]

The reach of a merged update M on task t is <M, tau_t> / ||tau_t||^2 (1: the task's whole update,
as far as M points along it), summed over the moved 2-D weights with the weights ||tau_t||^2.
Task arithmetic's M is lambda * sum_s tau_s; Iso-C's (Marczak et al., ICML 2025) is
alpha * sigma_bar * U V^T of that sum (its flattened spectrum).
Defaults: lambda 0.45, alpha 1.75 (what validation picks on format 13's pool).
"""

from __future__ import annotations

import sys

import torch

import fusionbench
from fusionbench.methods.iso_c import iso_c_matrix


def main(scaling: float, alpha: float) -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    tasks = pool.tasks
    vectors = [pool.task_vector(t) for t in tasks]
    names = [n for n, w in vectors[0].items() if w.ndim == 2 and all(bool(v[n].any()) for v in vectors)]
    inner = {"task arithmetic": [0.0] * len(tasks), "iso_c": [0.0] * len(tasks)}
    norm_sq = [0.0] * len(tasks)
    for name in names:
        taus = [v[name].double() for v in vectors]
        total = torch.stack(taus).sum(0)
        iso = alpha * iso_c_matrix(taus)
        for t, tau in enumerate(taus):
            norm_sq[t] += float(tau.pow(2).sum())
            inner["task arithmetic"][t] += scaling * float((total * tau).sum())
            inner["iso_c"][t] += float((iso * tau).sum())
    print(f"reach on each task (task arithmetic at {scaling}, Iso-C at {alpha}):\n")
    print("| merge | " + " | ".join(tasks) + " |\n|---|" + "---|" * len(tasks))
    for merge, values in inner.items():
        print(f"| {merge} | " + " | ".join(f"{x / n:.2f}" for x, n in zip(values, norm_sq)) + " |")


if __name__ == "__main__":
    scaling, alpha = (float(x) for x in sys.argv[1:3]) if len(sys.argv) > 2 else (0.45, 1.75)
    main(scaling, alpha)
