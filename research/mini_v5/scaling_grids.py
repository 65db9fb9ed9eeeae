"""Where the scaled merges peak on one prototype design, past the methods' published grids (issue 16).

    python research/mini_v5/scaling_grids.py '{"name": "v38_lr3e-4", "width": 192, ...}'

Builds the design's world as ``experiment.py`` does (its cached base, its fine-tunes), then merges the
seven tasks with TIES, TSV-M, Iso-C and Iso-CTS at weights 0.5 to 8 of each method's merged update
and prints mean validation accuracy and test gain recovered at each. Also the shape of the summed task
matrices' spectra (mean singular value over the largest; energy in the top seventh of directions),
which sets where Iso-C's flattened update peaks. Writes ``results/<name>_grids.json``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
import experiment  # noqa: E402

WEIGHTS = [0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8]


def spectrum_shape(world: experiment.World, tuned: dict[str, dict[str, torch.Tensor]]) -> dict[str, float]:
    """Mean over the moved 2-D weights of the summed task matrix's mean / largest singular value and top-seventh energy."""
    ratios, energies = [], []
    for name in world.names:
        summed = sum(tuned[t][name] - world.theta0[name] for t in experiment.TASKS)
        if summed.dim() != 2 or not summed.abs().sum():
            continue
        s = torch.linalg.svdvals(summed.double())
        ratios.append(float(s.mean() / s[0]))
        energies.append(float((s[: len(s) // len(experiment.TASKS)] ** 2).sum() / (s**2).sum()))
    return {"mean_over_largest": float(np.mean(ratios)), "top_seventh_energy": float(np.mean(energies))}


def main(variant: dict) -> dict:
    torch.set_num_threads(variant["threads"])
    world = experiment.World(variant)
    world.pretrain()
    tasks = experiment.TASKS
    tuned = {t: world.finetune(t) for t in tasks}
    pre = {t: world.accuracy(world.theta0, t) for t in tasks}
    ft = {t: world.accuracy(tuned[t], t) for t in tasks}
    pool = experiment.ParamDictPool(world.theta0, tuned)
    out: dict = {"variant": variant, "spectrum": spectrum_shape(world, tuned)}
    for name, (method, _) in experiment.METHODS.items():
        direction = {n: d - world.theta0[n] for n, d in method().merge(pool).items()}
        rows = {}
        for weight in WEIGHTS:
            merged = {n: world.theta0[n] + weight * direction[n] for n in world.names}
            validation = float(np.mean([world.accuracy(merged, t, "validation") for t in tasks]))
            test = {t: world.accuracy(merged, t) for t in tasks}
            rows[weight] = {"validation": validation, "gain": float(np.mean([(test[t] - pre[t]) / max(ft[t] - pre[t], 0.01) for t in tasks]))}
        out[name] = rows
        print(name, {w: (round(r["validation"], 3), round(r["gain"], 3)) for w, r in rows.items()}, flush=True)
    return out


if __name__ == "__main__":
    chosen = {**experiment.DEFAULTS, **json.loads(sys.argv[1])}
    result = main(chosen)
    (Path(__file__).parent / "results" / f"{chosen['name']}_grids.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result["spectrum"]))
