"""What TIES's trim costs a single fine-tune of the mini pools, before any merging (issue 16).

    FUSIONBENCH_HOME=<a home with the built world> python research/mini_v5/trim_alone.py [pool]

TIES-Merging (Yadav et al., NeurIPS 2023) keeps each task vector's top-k fraction of entries by
magnitude, the threshold taken over the whole flattened vector, and resets the rest; its paper
reports that a fine-tune keeps nearly all its performance at k = 0.2. For every task of ``pool``
(default mini_clip_full) this prints the own-task gain recovered of theta_0 + trim_k(tau_t) for
several k, and the share of tau_t's energy the kept entries hold.
"""

from __future__ import annotations

import sys

import torch

import fusionbench
from fusionbench.api.params import ParamDict

KEEP = [0.05, 0.1, 0.2, 0.3, 0.5]
TASKPOOL = {"mini_clip": "mini_vision7", "mini_t5": "mini_text7"}


def trimmed(tau: ParamDict, keep: float) -> tuple[ParamDict, float]:
    """tau with all but its top-``keep`` entries by magnitude (over the whole vector) reset; the energy share kept."""
    flat = torch.cat([t.flatten().abs() for t in tau.values()])
    threshold = flat.kthvalue(flat.numel() - int(keep * flat.numel())).values
    out = ParamDict({n: t * (t.abs() >= threshold) for n, t in tau.items()})
    return out, float(sum(t.pow(2).sum() for t in out.values()) / flat.pow(2).sum())


def main(pool_name: str) -> None:
    pool = fusionbench.load_pool(pool_name)
    taskpool = fusionbench.load_taskpool(next(v for k, v in TASKPOOL.items() if pool_name.startswith(k)))
    base = pool.base()
    print("| task | " + " | ".join(f"k = {k}" for k in KEEP) + " |\n|---|" + "---|" * len(KEEP))
    for task in pool.tasks:
        pre = taskpool.evaluate(pool.model(base), [task])[task].value
        tuned = taskpool.evaluate(pool.model(pool.finetuned(task)), [task])[task].value
        cells = []
        for keep in KEEP:
            tau, energy = trimmed(pool.task_vector(task), keep)
            score = taskpool.evaluate(pool.model(base + tau), [task])[task].value
            cells.append(f"{(score - pre) / max(tuned - pre, 1e-9):.2f} ({energy:.2f})")
        print(f"| {task} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1] if len(sys.argv) > 1 else "mini_clip_full")
