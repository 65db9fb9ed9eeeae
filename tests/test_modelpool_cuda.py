"""Pools on a CUDA device give the CPU pool's ParamDicts and outputs (skipped without a GPU)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny_models as tm
import torch
from omegaconf import OmegaConf

from fusionbench.api.params import ParamDict
from fusionbench.modelpools.clip import CLIPModelPool

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def make_pool(base: Path, models: dict[str, Path], device: str, **extra: Any) -> CLIPModelPool:
    cfg = OmegaConf.merge(
        OmegaConf.structured(CLIPModelPool.Config),
        {"type": "clip", "name": "gpu", "base": str(base), "models": {t: str(p) for t, p in models.items()}, **extra},
    )
    return CLIPModelPool(cfg, device=device)


@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_cuda_pool_matches_cpu_pool(mode: str, tmp_path: Path) -> None:
    base = tm.save_tiny_clip(tmp_path / "base")
    models = {}
    for i, task in enumerate(["a", "b"]):
        clip = tm.load_clip(base)
        if mode == "full":
            tm.perturb_(clip.vision_model, seed=i)
            clip.vision_model.save_pretrained(tmp_path / task)
        else:
            peft_model = tm.lora_model(clip.vision_model, init_lora_weights=mode == "lora")
            phi0 = tm.adapter_state(peft_model)
            tm.perturb_(peft_model, seed=i, scale=0.3, only=["lora_"])
            if mode == "lora":
                peft_model.save_pretrained(tmp_path / task)
            else:
                tm.save_own_llora(peft_model, tmp_path / task, phi0)
        models[task] = tmp_path / task
    pixels = torch.randn(4, 3, tm.IMAGE_SIZE, tm.IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    outputs = []
    for device in ("cpu", "cuda"):
        pool = make_pool(base, models, device, mode=mode)
        merged = pool.base() + ParamDict.weighted_sum([pool.task_vector(t) for t in pool.tasks], [0.5, 0.5])
        assert all(v.device.type == "cpu" for v in merged.values())  # ParamDicts live on the CPU
        model = pool.model(merged)
        with torch.no_grad():
            image = model.vision(pixels.to(device)).cpu()
        text = model.encode_texts(["a photo of a cat"]).cpu()
        outputs.append((merged, image, text))
    (cpu_params, cpu_image, cpu_text), (gpu_params, gpu_image, gpu_text) = outputs
    assert cpu_params.allclose(gpu_params, atol=1e-6)
    assert torch.allclose(cpu_image, gpu_image, atol=1e-4) and torch.allclose(cpu_text, gpu_text, atol=1e-4)
