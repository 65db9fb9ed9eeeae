"""How much each task's weight update acts on the other tasks' inputs, per fine-tuning mode (issue 16).

    FUSIONBENCH_HOME=<a home with the built vision world> python research/mini_v5/input_overlap.py

For every linear layer of the vision tower, the inputs X_s of each task's validation images
(256 per task) are collected from the base model, and each task's update Delta W_t is formed as
the merged model sees it:

* full: theta_t - theta_0;
* LoRA: s (B_t A_t - B_0 A_0), s = lora_alpha / r;
* L-LoRA: the first-order term s (B_t - B_0) A_0 + s B_0 (A_t - A_0), since the merged model is the
  linearisation around (A_0, B_0); with B_0 = 0 its row space is that of the shared init A_0.

Printed per mode, as means over layers and tasks t (norms per token): own = ||Delta W_t X_t||,
cross = mean_{s != t} ||Delta W_t X_s||, and their ratio: how strongly an update acts on the
other domains' inputs relative to its own (1 = alike, 0 = not at all).
"""

from __future__ import annotations

import json
from statistics import fmean

import torch
from safetensors.torch import load_file
from transformers import CLIPImageProcessor, CLIPModel

import fusionbench
from fusionbench.mini.build import require_world
from fusionbench.mini.vision_world import TASKS

EXAMPLES = 256
ADAPTER = "base_model.model."


def layer_inputs(model: CLIPModel, processor: CLIPImageProcessor) -> dict[str, dict[str, torch.Tensor]]:
    """{layer name: {task: inputs (tokens x features)}} of every linear layer of the vision encoder."""
    taskpool = fusionbench.load_taskpool("mini_vision7")
    linears = {name: module for name, module in model.vision_model.encoder.named_modules() if isinstance(module, torch.nn.Linear)}
    inputs: dict[str, dict[str, torch.Tensor]] = {f"encoder.{name}": {} for name in linears}
    for task in TASKS:
        captured: dict[str, list[torch.Tensor]] = {name: [] for name in linears}
        hooks = [module.register_forward_hook(lambda _m, args, _o, name=name: captured[name].append(args[0].reshape(-1, args[0].shape[-1])))
                 for name, module in linears.items()]
        with torch.no_grad():
            for batch in taskpool.batches(task, "validation", 64, EXAMPLES):
                model.vision_model(pixel_values=processor(images=batch.images, return_tensors="pt")["pixel_values"])
        for hook in hooks:
            hook.remove()
        for name, chunks in captured.items():
            inputs[f"encoder.{name}"][task] = torch.cat(chunks).double()
    return inputs


def updates(world, mode: str, layers: list[str]) -> dict[str, dict[str, torch.Tensor]]:
    """{task: {layer: Delta W_t}} of one mode's pool, as the merged model sees it."""
    base = load_file(world / "clip" / "model.safetensors")
    out: dict[str, dict[str, torch.Tensor]] = {}
    for task in TASKS:
        folder = world / "pools" / mode / task
        if mode == "full":
            tuned = load_file(folder / "model.safetensors")
            out[task] = {layer: tuned[f"{layer}.weight"].double() - base[f"vision_model.{layer}.weight"].double() for layer in layers}
            continue
        config = json.loads((folder / "adapter_config.json").read_text())
        scale = config["lora_alpha"] / config["r"]
        tuned, init = load_file(folder / "adapter_model.safetensors"), load_file(folder / "adapter_init.safetensors")
        out[task] = {}
        for layer in layers:
            a, b = (tuned[f"{ADAPTER}{layer}.lora_{x}.weight"].double() for x in "AB")
            a0, b0 = (init[f"{ADAPTER}{layer}.lora_{x}.weight"].double() for x in "AB")
            delta = b @ a - b0 @ a0 if mode == "lora" else (b - b0) @ a0 + b0 @ (a - a0)
            out[task][layer] = scale * delta
    return out


def cross_own(deltas: dict[str, dict[str, torch.Tensor]], inputs: dict[str, dict[str, torch.Tensor]]) -> tuple[float, float, float]:
    """Means over layers and tasks t of ||Delta W_t X_t||, mean_{s != t} ||Delta W_t X_s|| and their ratio (norms per token)."""
    ratios, owns, crosses = [], [], []
    for layer, by_task in inputs.items():
        for t in TASKS:
            delta = deltas[t][layer]
            if not bool(delta.any()):
                continue
            act = {s: float((by_task[s] @ delta.mT).norm()) / by_task[s].shape[0] ** 0.5 for s in TASKS}
            cross = fmean(act[s] for s in TASKS if s != t)
            ratios.append(cross / act[t])
            owns.append(act[t])
            crosses.append(cross)
    return fmean(owns), fmean(crosses), fmean(ratios)


def main() -> None:
    world = require_world("vision")
    model = CLIPModel.from_pretrained(world / "clip").eval()
    inputs = layer_inputs(model, CLIPImageProcessor.from_pretrained(world / "clip"))
    for mode in ("full", "lora", "llora"):
        own, cross, ratio = cross_own(updates(world, mode, list(inputs)), inputs)
        print(f"{mode:6s} own {own:.3f}  cross {cross:.3f}  cross/own {ratio:.3f}", flush=True)


if __name__ == "__main__":
    main()
