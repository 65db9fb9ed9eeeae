"""open_clip pool: task-arithmetic-style image-encoder checkpoints in several key layouts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import open_clip
import pytest
import tiny_models as tm
import torch
from omegaconf import OmegaConf
from safetensors.torch import save_file

from fusionbench.api.errors import CheckpointError, ConfigError
from fusionbench.api.params import ParamDict
from fusionbench.modelpools.open_clip_pool import OpenCLIPModelPool

PIXELS = torch.randn(2, 3, tm.IMAGE_SIZE, tm.IMAGE_SIZE, generator=torch.Generator().manual_seed(1))


def make_pool(w: dict[str, Any], models: dict[str, Any], **extra: Any) -> OpenCLIPModelPool:
    cfg = OmegaConf.merge(
        OmegaConf.structured(OpenCLIPModelPool.Config),
        {"type": "open_clip", "name": "oc", "model_name": "tiny-oc", "model_config": str(w["arch"]),
         "pretrained": str(w["base"]), "models": {t: str(p) for t, p in models.items()}, **extra},
    )
    return OpenCLIPModelPool(cfg)


def fresh(w: dict[str, Any]) -> torch.nn.Module:
    model = open_clip.create_model("tiny-oc")
    model.load_state_dict(torch.load(w["base_pt"], weights_only=True))
    return model.eval()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("oc")
    w: dict[str, Any] = {"arch": tm.write_open_clip_config(root / "arch"), "models": {}, "params": {}}
    open_clip.add_model_config(w["arch"])
    torch.manual_seed(0)
    base = open_clip.create_model("tiny-oc")
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(root / "base.safetensors"))
    torch.save(base.state_dict(), root / "base.pt")
    w["base"], w["base_pt"] = root / "base.safetensors", root / "base.pt"
    for i, task in enumerate(["cars", "dtd", "svhn"]):
        model = fresh(w)
        tm.perturb_(model.visual, seed=i + 1)
        w["params"][task] = {n: p.detach().clone() for n, p in model.visual.named_parameters()}
        if task == "cars":  # task arithmetic's ImageEncoder: the CLIP under .model, as a weights-only state dict
            torch.save({f"model.{k}": v for k, v in model.state_dict().items()}, root / "cars.pt")
            w["models"][task] = root / "cars.pt"
        elif task == "dtd":  # the image encoder alone
            save_file({k: v.contiguous() for k, v in model.visual.state_dict().items()}, str(root / "dtd.safetensors"))
            w["models"][task] = root / "dtd.safetensors"
        else:  # a whole CLIP state dict
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(root / "svhn.safetensors"))
            w["models"][task] = root / "svhn.safetensors"
    return w


def test_open_clip_task_vectors_and_model(world: dict[str, Any]) -> None:
    pool = make_pool(world, world["models"])
    assert pool.mode == "full" and pool.tasks == ["cars", "dtd", "svhn"]
    base = fresh(world)
    for task, params in world["params"].items():
        tv = pool.task_vector(task)
        for name, p in base.visual.named_parameters():
            assert torch.allclose(tv[name], params[name] - p.detach(), atol=1e-6), name
    merged = pool.base() + ParamDict.weighted_sum([pool.task_vector(t) for t in pool.tasks], [0.3] * 3)
    model = pool.model(merged)
    with torch.no_grad():
        for name, p in base.visual.named_parameters():
            p.copy_(merged[name])
        assert torch.allclose(model.vision(PIXELS), base.encode_image(PIXELS), atol=1e-5)
        tokens = open_clip.get_tokenizer("tiny-oc")(["a photo of a cat"])
        assert torch.allclose(model.encode_texts(["a photo of a cat"]), base.encode_text(tokens), atol=1e-5)
    assert model.logit_scale == pytest.approx(float(base.logit_scale.detach().exp()))
    assert pool.identity()["base"].startswith("sha256:") and set(pool.identity()["models"]) == set(pool.tasks)


def test_open_clip_bad_inputs(world: dict[str, Any], tmp_path: Path) -> None:
    model = fresh(world)
    torch.save(model, tmp_path / "pickled.pt")  # how task arithmetic ships checkpoints: a pickled module
    with pytest.raises(CheckpointError, match="not loadable with torch.load\\(weights_only=True\\)"):
        make_pool(world, {"a": tmp_path / "pickled.pt"})
    with pytest.raises(CheckpointError, match="'.*missing.pt' does not exist; set modelpool.models.a"):
        make_pool(world, {"a": tmp_path / "missing.pt"})
    with pytest.raises(ConfigError, match="not an open_clip architecture"):
        make_pool(world, world["models"], model_name="tiny-ocx", model_config=None)
    with pytest.raises(CheckpointError, match=r"base model ViT-B-32/openai .*hub is unreachable \(HF_HUB_OFFLINE is set\)"):
        make_pool(world, world["models"], model_name="ViT-B-32", model_config=None, pretrained="openai")
