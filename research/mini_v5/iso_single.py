"""Iso-C's flattening seen from one task of the full vision pool (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/iso_single.py [task ...]

For each task t (default: position, shape, texture), test scores on t of:
the six other tasks merged by task arithmetic at 0.45 and by Iso-C at 1.75 (format 13's picks),
without t's own update (what the others' merges do to t at the base); and t's own update with
each 2-D weight flattened alone to sigma_bar U V^T (Marczak et al., ICML 2025), every other
tensor kept, at the weight in SCALES that validation picks, as gain recovered (what t's function
keeps without the shape of its own spectrum).
"""

from __future__ import annotations

import sys

import torch

import fusionbench
from fusionbench.api.params import ParamDict
from fusionbench.methods.iso_c import iso_c_matrix

SCALES = [2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0]


def main(targets: list[str]) -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    taskpool = fusionbench.load_taskpool("mini_vision7")
    base = pool.base()
    vectors = {t: pool.task_vector(t) for t in pool.tasks}

    def score(params: dict[str, torch.Tensor], task: str, split: str = "test") -> float:
        return taskpool.evaluate(pool.model(ParamDict(params)), [task], split)[task].value

    def moved(name: str, tau: dict[str, torch.Tensor]) -> bool:
        return base[name].ndim == 2 and bool(tau[name].any())

    print("| task | base | six others, TA 0.45 | six others, Iso-C 1.75 | own update flattened: weight, gain recovered |\n|---|---|---|---|---|")
    for target in targets:
        others = [t for t in pool.tasks if t != target]
        total = {n: sum(vectors[t][n] for t in others) for n in base}
        by_ta = {n: w + 0.45 * total[n] for n, w in base.items()}
        by_iso = {n: w + (1.75 * iso_c_matrix([vectors[t][n] for t in others]) if moved(n, total) else 1.75 / len(pool.tasks) * total[n]) for n, w in base.items()}
        own = vectors[target]
        flat = {n: iso_c_matrix([own[n]]) for n in base if moved(n, own)}

        def flattened(c: float) -> dict[str, torch.Tensor]:
            return {n: w + (c * flat[n] if n in flat else own[n]) for n, w in base.items()}

        best = max(SCALES, key=lambda c: score(flattened(c), target, "validation"))
        pre, tuned = score(base, target), score(pool.finetuned(target), target)
        gain = (score(flattened(best), target) - pre) / max(tuned - pre, 1e-9)
        print(f"| {target} | {pre:.3f} | {score(by_ta, target):.3f} | {score(by_iso, target):.3f} | {best}, {gain:.2f} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(sys.argv[1:] or ["position", "shape", "texture"])
