"""How strongly the base's activations excite the head and the tail of the summed task matrices (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/tail_excitation.py [energy]

Iso-C flattens each summed task matrix D = U S V^T to sigma_bar U V^T, which lifts the low-energy
tail of D's spectrum to the level of its head. Whether that tail matters depends on how much of
the layer's input lies along its input-side directions. For every moved 2-D weight of the full
vision pool this prints, for the head (the fewest top directions holding ``energy`` of D's squared
spectrum, default 0.9) and the tail (the rest), the mean of ||X v_i||^2 over their input directions
v_i relative to an isotropic input's (||X||^2 / n); and the effective rank of the layer's input
X over its width (exp of the entropy of X's normalised squared singular values). X: the base's
inputs to the layer on 64 validation images of each task.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import fusionbench
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.taskpool import TaskPool
from fusionbench.methods.linalg import svd

sys.path.insert(0, str(Path(__file__).parent))
from task_spectra import effective_rank  # noqa: E402


def layer_inputs(pool: ModelPool, taskpool: TaskPool, names: list[str]) -> dict[str, torch.Tensor]:
    """Weight name -> (tokens, in) inputs of its linear layer in the base model, over every task's validation images."""
    model = pool.model(pool.base())
    modules = dict(model.vision.named_modules())
    seen: dict[str, list[torch.Tensor]] = {n: [] for n in names}
    hooks = []
    for name in names:
        module = modules[name.removesuffix(".weight")]
        hooks.append(module.register_forward_hook(lambda _m, args, _out, name=name: seen[name].append(args[0].detach().reshape(-1, args[0].shape[-1]))))
    with torch.no_grad():
        for task in pool.tasks:
            batch = next(iter(taskpool.batches(task, "validation", 64)))
            taskpool.class_logits(model, batch, task)
    for hook in hooks:
        hook.remove()
    return {n: torch.cat(x).double() for n, x in seen.items()}


def main(energy: float) -> None:
    pool = fusionbench.load_pool("mini_clip_full")
    taskpool = fusionbench.load_taskpool("mini_vision7")
    vectors = [pool.task_vector(t) for t in pool.tasks]
    names = [n for n, w in vectors[0].items() if w.ndim == 2 and all(bool(v[n].any()) for v in vectors)]
    inputs = layer_inputs(pool, taskpool, names)
    print("| weight | head directions | head excitation | tail excitation | input effective rank / width |\n|---|---|---|---|---|")
    for name in names:
        u, s, v = svd(torch.stack([vec[name] for vec in vectors]).sum(0).double())
        r = int((s.pow(2).cumsum(0) / s.pow(2).sum() < energy).sum()) + 1
        x = inputs[name]
        isotropic = x.pow(2).sum() / x.shape[1]
        excitation = (x @ v).pow(2).sum(0) / isotropic
        width = x.shape[1]
        print(f"| {name.removeprefix('vision_model.encoder.')} | {r} of {len(s)} | {float(excitation[:r].mean()):.2f} | {float(excitation[r:].mean()):.2f} | {effective_rank(torch.linalg.svdvals(x)) / width:.2f} |")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main(float(sys.argv[1]) if len(sys.argv) > 1 else 0.9)
