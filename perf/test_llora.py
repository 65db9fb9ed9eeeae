"""Closed-form L-LoRA against LoRA and the jvp wrapper; folded against unfolded adapters at inference.

All on the CLIP ViT-B/16 vision tower with LoRA r16 on q_proj + v_proj (the shipped
clip-vit-b16 recipe), batch ``FUSIONBENCH_BENCH_BATCH`` (default 2, CPU-sized):

* ``llora-train``: one optimizer step (forward, backward, AdamW) of LoRA (peft), L-LoRA
  in closed form (``linearize_lora_``) and L-LoRA through a per-layer ``torch.func.jvp``
  wrapper (the paper's implementation: ``LinearizedModel`` around each LoRA layer).
* ``llora-forward``: one forward pass without autograd of the same three.
* ``inference``: the dense base model against merged L-LoRA adapters folded into dense
  weights (how FusionBench evaluates them) and left unfolded.

The two targets (L-LoRA training / LoRA, folded L-LoRA inference / base) are measured
``side_by_side``: the variants alternate call by call.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import torch
from bench_helpers import run, side_by_side, vit_b16_recipe

from fusionbench.models.linearize import LinearizedModel
from fusionbench.profiling.workload import Workload

BATCH = int(os.environ.get("FUSIONBENCH_BENCH_BATCH", "2"))


def moved(work: Workload) -> Workload:
    """Move the adapters away from their init, as a fine-tuned (or merged) adapter is."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for name, p in work.model.named_parameters():
            if "lora_" in name:
                p.add_(0.01 * torch.randn(p.shape, generator=g))
    return work


def jvp_llora() -> Workload:
    """LoRA whose every LoRA layer is wrapped in the jvp-linearised ``LinearizedModel`` (the paper's L-LoRA)."""
    from peft.tuners.lora import Linear as LoraLinear

    work = Workload(vit_b16_recipe(BATCH), "lora", "cpu")
    for path, module in [(p, m) for p, m in work.root.named_modules() if isinstance(m, LoraLinear)]:
        parent, _, child = path.rpartition(".")
        setattr(work.root.get_submodule(parent), child, LinearizedModel(module))
    return work


@pytest.fixture(scope="module")
def workloads() -> dict[str, Workload]:
    recipe = vit_b16_recipe(BATCH)
    folded = moved(Workload(recipe, "llora", "cpu"))
    folded.fold_()
    return {
        "base": Workload(recipe, "full", "cpu"),
        "lora": moved(Workload(recipe, "lora", "cpu")),
        "llora": moved(Workload(recipe, "llora", "cpu")),
        "llora-jvp": moved(jvp_llora()),
        "llora-folded": folded,
    }


@pytest.mark.benchmark(group="llora-train: ViT-B/16 LoRA r16, one AdamW step")
@pytest.mark.parametrize("variant", ["lora", "llora", "llora-jvp"])
def test_train_step(benchmark: Any, workloads: dict[str, Workload], variant: str) -> None:
    run(benchmark, workloads[variant].train_step, rounds=3, warmup=1)


@pytest.mark.benchmark(group="llora-forward: ViT-B/16 LoRA r16, forward without autograd")
@pytest.mark.parametrize("variant", ["lora", "llora", "llora-jvp"])
def test_forward(benchmark: Any, workloads: dict[str, Workload], variant: str) -> None:
    run(benchmark, workloads[variant].infer_step, rounds=3, warmup=1)


@pytest.mark.benchmark(group="inference: ViT-B/16 base vs merged L-LoRA folded / unfolded")
@pytest.mark.parametrize("variant", ["base", "llora-folded", "llora", "llora-jvp"])
def test_inference(benchmark: Any, workloads: dict[str, Workload], variant: str) -> None:
    run(benchmark, workloads[variant].infer_step, rounds=3, warmup=1)


@pytest.mark.benchmark(group="targets, side by side: one round = each variant once, interleaved")
def test_training_side_by_side(benchmark: Any, workloads: dict[str, Workload]) -> None:
    """L-LoRA training throughput against LoRA (target >= 0.95x)."""
    side_by_side(benchmark, {"train:lora": workloads["lora"].train_step, "train:llora": workloads["llora"].train_step}, rounds=6)


@pytest.mark.benchmark(group="targets, side by side: one round = each variant once, interleaved")
def test_inference_side_by_side(benchmark: Any, workloads: dict[str, Workload]) -> None:
    """Merged L-LoRA (folded) inference throughput against the base model (target >= 0.98x)."""
    side_by_side(benchmark, {"infer:base": workloads["base"].infer_step, "infer:llora-folded": workloads["llora-folded"].infer_step}, rounds=8)
