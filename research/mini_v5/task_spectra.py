"""How much of each full fine-tune's update TSV-M's truncation keeps, and how much its orthogonalisation moves (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/task_spectra.py

TSV-M (Gargiulo et al., CVPR 2025) keeps the top ``rank // T`` singular directions of each task's
update of every 2-D weight. For every task of the ``full`` pool this prints the norm of its whole
update, and over the vision tower's moved 2-D weights the mean share of the update's energy
(squared singular values) in those directions, the mean effective rank (the exponential of the
entropy of the normalised squared singular values), and the mean relative change of the task's
kept part U_k S_k V_k^T when TSV-M's Procrustes orthogonalisation replaces its U_k, V_k by their
blocks of the orthogonalised stacks.
"""

from __future__ import annotations

import math
from statistics import fmean

import torch
from safetensors.torch import load_file

from fusionbench.mini.build import require_world
from fusionbench.methods.linalg import orthogonalise, svd
from fusionbench.mini.vision_world import TASKS


def effective_rank(s: torch.Tensor) -> float:
    """exp of the entropy of the normalised squared singular values ``s``."""
    share = s.pow(2) / s.pow(2).sum()
    return math.exp(float(-(share * torch.log(share.clamp_min(1e-300))).sum()))


def spectra(delta: torch.Tensor, keep: int) -> tuple[float, float]:
    """(share of energy in the top ``keep`` directions, effective rank) of one update."""
    s = torch.linalg.svdvals(delta.double())
    return float(s[:keep].pow(2).sum() / s.pow(2).sum()), effective_rank(s)


def orthogonalisation_change(deltas: list[torch.Tensor], keep: int) -> list[float]:
    """Per task: ||U'_k S_k V'_k^T - U_k S_k V_k^T|| / ||U_k S_k V_k^T||, the primes TSV-M's orthogonalised blocks."""
    factors = [svd(delta.double()) for delta in deltas]
    us = [u[:, :keep] for u, _, _ in factors]
    ss = [s[:keep] for _, s, _ in factors]
    vs = [v[:, :keep] for _, _, v in factors]
    u_perp, v_perp = orthogonalise(torch.cat(us, dim=1)), orthogonalise(torch.cat(vs, dim=1))
    changes = []
    for t, (u, s, v) in enumerate(zip(us, ss, vs)):
        block = slice(t * keep, (t + 1) * keep)
        own = (u * s) @ v.mT
        changes.append(float(((u_perp[:, block] * s) @ v_perp[:, block].mT - own).norm() / own.norm()))
    return changes


def main() -> None:
    world = require_world("vision")
    base = load_file(world / "clip" / "model.safetensors")
    tuned = {task: load_file(world / "pools" / "full" / task / "model.safetensors") for task in TASKS}
    norm_sq = dict.fromkeys(TASKS, 0.0)
    kept: dict[str, list[float]] = {task: [] for task in TASKS}
    ranks: dict[str, list[float]] = {task: [] for task in TASKS}
    changes: dict[str, list[float]] = {task: [] for task in TASKS}
    for name, weight in base.items():
        if not name.startswith("vision_model.") or name.removeprefix("vision_model.") not in tuned[TASKS[0]]:
            continue
        deltas = [tuned[task][name.removeprefix("vision_model.")].double() - weight.double() for task in TASKS]
        for task, delta in zip(TASKS, deltas):
            norm_sq[task] += float(delta.pow(2).sum())
        if weight.ndim != 2 or not all(bool(delta.any()) for delta in deltas):
            continue
        keep = min(weight.shape) // len(TASKS)
        for task, delta, change in zip(TASKS, deltas, orthogonalisation_change(deltas, keep)):
            share, rank = spectra(delta, keep)
            kept[task].append(share)
            ranks[task].append(rank)
            changes[task].append(change)
    print("task         update norm  energy kept  effective rank  orthogonalisation change")
    for task in TASKS:
        print(f"{task:12s} {math.sqrt(norm_sq[task]):11.3f}  {fmean(kept[task]):11.2f}  {fmean(ranks[task]):14.1f}  {fmean(changes[task]):24.2f}")


if __name__ == "__main__":
    main()
