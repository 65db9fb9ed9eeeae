"""How much of each full fine-tune's update TSV-M's per-task truncation keeps (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/task_spectra.py

TSV-M (Gargiulo et al., CVPR 2025) keeps the top ``rank // T`` singular directions of each task's
update of every 2-D weight. For every task of the ``full`` pool this prints the norm of its whole
update, and over the vision tower's moved 2-D weights the mean share of the update's energy
(squared singular values) in those directions and the mean effective rank (the exponential of the
entropy of the normalised squared singular values).
"""

from __future__ import annotations

import math

import torch
from safetensors.torch import load_file

from fusionbench.mini.build import require_world
from fusionbench.mini.vision_world import TASKS


def spectra(delta: torch.Tensor, keep: int) -> tuple[float, float]:
    """(share of energy in the top ``keep`` directions, effective rank) of one update."""
    energy = torch.linalg.svdvals(delta.double()) ** 2
    share = energy / energy.sum()
    entropy = -(share * torch.log(share.clamp_min(1e-300))).sum()
    return float(share[:keep].sum()), math.exp(float(entropy))


def main() -> None:
    world = require_world("vision")
    base = load_file(world / "clip" / "model.safetensors")
    print("task         update norm  energy kept  effective rank")
    for task in TASKS:
        tuned = load_file(world / "pools" / "full" / task / "model.safetensors")
        norm_sq, kept, ranks = 0.0, [], []
        for name, weight in tuned.items():
            delta = weight.double() - base[f"vision_model.{name}"].double()
            norm_sq += float(delta.pow(2).sum())
            if delta.ndim == 2 and bool(delta.any()):
                share, rank = spectra(delta, min(delta.shape) // len(TASKS))
                kept.append(share)
                ranks.append(rank)
        print(f"{task:12s} {math.sqrt(norm_sq):11.3f}  {sum(kept) / len(kept):11.2f}  {sum(ranks) / len(ranks):14.1f}")


if __name__ == "__main__":
    main()
