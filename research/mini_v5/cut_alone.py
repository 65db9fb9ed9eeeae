"""What cutting a single fine-tune's update costs it, before any merging (issue 16).

    FUSIONBENCH_HOME=<a home with the built world> python research/mini_v5/cut_alone.py entries|components [pool]

``entries``: TIES-Merging's trim (Yadav et al., NeurIPS 2023) keeps each task vector's top-k
fraction of entries by magnitude, the threshold taken over the whole flattened vector; its paper
reports that a fine-tune keeps nearly all its performance at k = 0.2. ``components``: each moved
2-D weight's update cut to its top ceil(f * min(m, n)) singular components, every other tensor
kept whole; TSV (Gargiulo et al., CVPR 2025) rests on real CLIP fine-tunes keeping their
accuracy with a small share of them. For every task of ``pool`` (default mini_clip_full) this
prints the own-task gain recovered of theta_0 + cut(tau_t) at several fractions, and in brackets
the share of the update's energy kept (of the whole vector, or of the 2-D weights').
"""

from __future__ import annotations

import math
import sys
from typing import Callable

import torch

import fusionbench
from fusionbench.api.params import ParamDict
from fusionbench.methods.linalg import svd
from fusionbench.methods.ties import trim_thresholds

TASKPOOL = {"mini_clip": "mini_vision7", "mini_t5": "mini_text7"}


def top_entries(tau: ParamDict, keep: float) -> tuple[ParamDict, float]:
    """tau trimmed as TIES trims it (``trim_thresholds``, the official convention); the energy share kept."""
    threshold = trim_thresholds([tau], keep)[0]
    out = ParamDict({n: t * (t.abs() >= threshold) for n, t in tau.items()})
    return out, float(sum(t.pow(2).sum() for t in out.values()) / sum(t.pow(2).sum() for t in tau.values()))


def top_components(tau: ParamDict, fraction: float) -> tuple[ParamDict, float]:
    """tau with each non-zero 2-D tensor cut to its top components; the share of their energy kept."""
    out, kept, total = {}, 0.0, 0.0
    for name, delta in tau.items():
        if delta.ndim != 2 or not bool(delta.any()):
            out[name] = delta
            continue
        u, s, v = svd(delta.double())
        r = math.ceil(fraction * len(s))
        out[name] = ((u[:, :r] * s[:r]) @ v[:, :r].mT).to(delta.dtype)
        kept, total = kept + float(s[:r].pow(2).sum()), total + float(s.pow(2).sum())
    return ParamDict(out), kept / total


CUTS: dict[str, tuple[Callable[[ParamDict, float], tuple[ParamDict, float]], list[float]]] = {
    "entries": (top_entries, [0.05, 0.1, 0.2, 0.3, 0.5]),
    "components": (top_components, [0.03, 0.06, 1 / 7, 0.25, 0.5]),
}


def main(cut_name: str, pool_name: str) -> None:
    cut, fractions = CUTS[cut_name]
    pool = fusionbench.load_pool(pool_name)
    taskpool = fusionbench.load_taskpool(next(v for k, v in TASKPOOL.items() if pool_name.startswith(k)))
    base = pool.base()
    print("| task | " + " | ".join(f"{f:.3g}" for f in fractions) + " |\n|---|" + "---|" * len(fractions))
    for task in pool.tasks:
        pre = taskpool.evaluate(pool.model(base), [task])[task].value
        tuned = taskpool.evaluate(pool.model(pool.finetuned(task)), [task])[task].value
        vector, cells = pool.task_vector(task), []
        for fraction in fractions:
            tau, energy = cut(vector, fraction)
            score = taskpool.evaluate(pool.model(base + tau), [task])[task].value
            cells.append(f"{(score - pre) / max(tuned - pre, 1e-9):.2f} ({energy:.2f})")
        print(f"| {task} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "mini_clip_full")
