"""How many singular components of its own update a single fine-tune of the mini pools needs (issue 16).

    FUSIONBENCH_HOME=<a home with the built world> python research/mini_v5/rank_alone.py [pool]

TSV (Gargiulo et al., CVPR 2025) rests on the observation that real CLIP fine-tunes keep their
accuracy with only a few per cent of each layer's singular components. For every task of ``pool``
(default mini_clip_full) this prints the own-task gain recovered of theta_0 + tau_t with each
moved 2-D weight's update cut to its top ceil(f * min(m, n)) singular components (every other
tensor kept whole), and the share of those weights' update energy kept, for several fractions f.
"""

from __future__ import annotations

import math
import sys

import torch

import fusionbench
from fusionbench.api.params import ParamDict
from fusionbench.methods.linalg import svd

FRACTIONS = [0.03, 0.06, 1 / 7, 0.25, 0.5]
TASKPOOL = {"mini_clip": "mini_vision7", "mini_t5": "mini_text7"}


def truncated(tau: ParamDict, fraction: float) -> tuple[ParamDict, float]:
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


def main(pool_name: str) -> None:
    pool = fusionbench.load_pool(pool_name)
    taskpool = fusionbench.load_taskpool(next(v for k, v in TASKPOOL.items() if pool_name.startswith(k)))
    base = pool.base()
    print("| task | " + " | ".join(f"f = {f:.3g}" for f in FRACTIONS) + " |\n|---|" + "---|" * len(FRACTIONS))
    for task in pool.tasks:
        pre = taskpool.evaluate(pool.model(base), [task])[task].value
        tuned = taskpool.evaluate(pool.model(pool.finetuned(task)), [task])[task].value
        cells = []
        for fraction in FRACTIONS:
            tau, energy = truncated(pool.task_vector(task), fraction)
            score = taskpool.evaluate(pool.model(base + tau), [task])[task].value
            cells.append(f"{(score - pre) / max(tuned - pre, 1e-9):.2f} ({energy:.2f})")
        print(f"| {task} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1] if len(sys.argv) > 1 else "mini_clip_full")
