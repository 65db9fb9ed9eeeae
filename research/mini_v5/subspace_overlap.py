"""How much the tasks' kept singular subspaces overlap, per weight of the full vision pool (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/subspace_overlap.py [weight ...]

For each weight matrix named (a substring of its name; default: the MLPs of blocks 1 and 2),
every task's update is cut to the top k = rank // T singular components that TSV-M keeps.
Entry (i, j) is the share of task i's kept energy that lies in task j's kept subspace,
sum_c s_c^2 ||P_j u_c||^2 / sum_c s_c^2, on the output side (left singular vectors) and the
input side (right); two random k-dimensional subspaces of a d-dimensional space share k / d.
"""

from __future__ import annotations

import sys

import torch

import fusionbench
from fusionbench.methods.linalg import svd

DEFAULT = ["layers.1.mlp.fc1.weight", "layers.1.mlp.fc2.weight", "layers.2.mlp.fc1.weight", "layers.2.mlp.fc2.weight"]


def overlaps(bases: list[torch.Tensor], energies: list[torch.Tensor]) -> torch.Tensor:
    """(i, j): share of task i's kept energy inside task j's kept subspace."""
    out = torch.zeros(len(bases), len(bases))
    for i, (basis, energy) in enumerate(zip(bases, energies)):
        for j, other in enumerate(bases):
            out[i, j] = ((other.mT @ basis).pow(2).sum(0) * energy).sum() / energy.sum()
    return out


def main(patterns: list[str]) -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    tasks = pool.tasks
    base = pool.base()
    vectors = [pool.task_vector(t) for t in tasks]
    for pattern in patterns or DEFAULT:
        name = next(n for n in base if pattern in n)
        k = min(base[name].shape) // len(tasks)
        left, right, energy = [], [], []
        for tau in vectors:
            u, s, v = svd(tau[name].double())
            left.append(u[:, :k])
            right.append(v[:, :k])
            energy.append(s[:k] ** 2)
        for side, bases in (("output", left), ("input", right)):
            dim = bases[0].shape[0]
            matrix = overlaps(bases, energy)
            print(f"\n{name}, {side} side: {k} of {dim} directions per task (random: {k / dim:.3f})")
            print("| | " + " | ".join(tasks) + " | mean over the others |\n|---|" + "---|" * (len(tasks) + 1))
            for i, task in enumerate(tasks):
                others = (matrix[i].sum() - matrix[i, i]) / (len(tasks) - 1)
                print(f"| {task} | " + " | ".join(f"{x:.2f}" for x in matrix[i]) + f" | {others:.3f} |")


if __name__ == "__main__":
    main(sys.argv[1:])
