"""Which part of Iso-C's merge costs it against task arithmetic on the full vision pool (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/iso_parts.py [lambda]

Iso-C (Marczak et al., ICML 2025) flattens the spectrum of each summed 2-D task matrix D to
sigma_bar U V^T and scales the mean of every other tensor's updates by the same alpha. Printed per
task, test gain recovered, against task arithmetic at lambda (default 0.45, what validation picks
on format 13's pool): Iso-C as published; its 2-D weights with every other tensor at task
arithmetic's lambda times the sum; the same with only the fewest top directions of D that
hold 90% or 99% of its squared spectrum flattened (their mean singular value), the rest dropped;
and Iso-C on the attention weights only or the MLP weights only, every other tensor as task
arithmetic. Each merge's alpha is picked on validation from ALPHAS.
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import fusionbench
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.iso_c import iso_c_matrix
from fusionbench.methods.linalg import svd

ALPHAS = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5]
ENERGY_KEPT = [0.9, 0.99]


def flat_heads(total: torch.Tensor) -> dict[float, torch.Tensor]:
    """Per share e of ENERGY_KEPT: sigma_bar U_r V_r^T over the fewest top directions r of ``total`` holding e of its squared spectrum."""
    u, s, v = svd(total.double())
    cumulative = (s.pow(2).cumsum(0) / s.pow(2).sum()).contiguous()
    out = {}
    for energy in ENERGY_KEPT:
        r = int(torch.searchsorted(cumulative, torch.tensor([energy], dtype=s.dtype))) + 1
        out[energy] = (s[:r].mean() * (u[:, :r] @ v[:, :r].mT)).to(total.dtype)
    return out


def scores(pool: ModelPool, taskpool: TaskPool, params: ParamDict, split: str) -> dict[str, float]:
    """Score of ``params`` on each of the pool's tasks."""
    result = taskpool.evaluate(pool.model(params), pool.tasks, split)
    return {task: result[task].value for task in pool.tasks}


def main(scaling: float) -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    taskpool = fusionbench.load_taskpool("mini_vision7")
    tasks = pool.tasks
    base = pool.base()
    vectors = [pool.task_vector(t) for t in tasks]
    total = {n: sum(v[n] for v in vectors) for n in base}
    flat = {n: iso_c_matrix([v[n] for v in vectors]) for n in base if base[n].ndim == 2 and bool(total[n].any())}
    pre = scores(pool, taskpool, base, "test")
    tuned = {t: taskpool.evaluate(pool.model(pool.finetuned(t)), [t])[t].value for t in tasks}
    by_weight = {n: flat_heads(total[n]) for n in flat}
    heads = {e: {n: by_weight[n][e] for n in flat} for e in ENERGY_KEPT}

    def merged(alpha: float, energy: float | None, rest_as_ta: bool, only: str = "") -> ParamDict:
        """theta_0 + alpha * (flattened 2-D sums whose names hold ``only``); every other tensor at alpha / T or lambda times its sum."""
        matrices = flat if energy is None else heads[energy]
        rest = scaling if rest_as_ta else alpha / len(tasks)
        return ParamDict({n: w + alpha * matrices[n] if n in flat and only in n else w + rest * total[n] for n, w in base.items()})

    print("| merge | alpha | " + " | ".join(tasks) + " | gain recovered |\n|---|---|" + "---|" * (len(tasks) + 1))
    ta = ParamDict({n: base[n] + scaling * total[n] for n in base})
    rows = [("task arithmetic", scaling, ta)]
    variants = [("iso_c", None, False, ""), ("iso_c, rest as TA", None, True, "")]
    variants += [(f"iso_c on the top {e:.0%} of energy, rest as TA", e, True, "") for e in ENERGY_KEPT]
    variants += [(f"iso_c on the {part} weights only, rest as TA", None, True, f".{part}.") for part in ("self_attn", "mlp")]
    for label, energy, rest_as_ta, only in variants:
        best = max(ALPHAS, key=lambda a: np.mean(list(scores(pool, taskpool, merged(a, energy, rest_as_ta, only), "validation").values())))
        rows.append((label, best, merged(best, energy, rest_as_ta, only)))
    for label, weight, params in rows:
        test = scores(pool, taskpool, params, "test")
        gains = [(test[t] - pre[t]) / max(tuned[t] - pre[t], 1e-9) for t in tasks]
        print(f"| {label} | {weight} | " + " | ".join(f"{g:.2f}" for g in gains) + f" | {np.mean(gains):.3f} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.45)
