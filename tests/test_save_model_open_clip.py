"""A merged open_clip pool saved by ``fusionbench merge`` loads with open_clip alone and computes what the in-process
merged model does (image and text embeddings, preprocessing, logit scale); stream=true is refused for it, nothing written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import open_clip
import pytest
import tiny_models as tm
import torch
from omegaconf import OmegaConf
from PIL import Image
from safetensors.torch import save_file

from fusionbench.cli.main import main
from fusionbench.config.compose import compose
from fusionbench.engine.build import build
from fusionbench.engine.merge import checked_merge
from fusionbench.export import MergeSchema

TASKS = ["dtd", "svhn"]  # tasks of the clip_ta8 task pool the pool names
TEXTS = ["a photo of a cat", "a photo of a dog"]

# open_clip only: the architecture and preprocessing come from the saved open_clip_config.json
RELOAD = r"""
import sys
import open_clip, torch
from PIL import Image

saved, image_file, out_file = sys.argv[1:]
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + saved)
tokenizer = open_clip.get_tokenizer("local-dir:" + saved)
model.eval()
pixels = preprocess(Image.open(image_file)).unsqueeze(0)
with torch.no_grad():
    out = {"pixels": pixels, "image": model.encode_image(pixels), "text": model.encode_text(tokenizer(%r)),
           "logit_scale": model.logit_scale.exp()}
assert not [m for m in sys.modules if m.split(".")[0] == "fusionbench"], "the reload imported fusionbench"
torch.save(out, out_file)
""" % TEXTS


def open_clip_pool(root: Path) -> Path:
    """A tiny open_clip pool (an architecture JSON, a base state dict, two fine-tuned image encoders) as a pool YAML."""
    arch = tm.write_open_clip_config(root / "arch")
    open_clip.add_model_config(arch)
    torch.manual_seed(0)
    base = open_clip.create_model("tiny-oc")
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(root / "base.safetensors"))
    models = {}
    for i, task in enumerate(TASKS):
        visual = open_clip.create_model("tiny-oc").visual
        visual.load_state_dict(base.visual.state_dict())
        tm.perturb_(visual, seed=i + 1)
        models[task] = str(root / f"{task}.safetensors")
        save_file({k: v.contiguous() for k, v in visual.state_dict().items()}, models[task])
    pool = {"type": "open_clip", "model_name": "tiny-oc", "model_config": str(arch), "pretrained": str(root / "base.safetensors"),
            "taskpool": "clip_ta8", "models": models}
    OmegaConf.save(pool, root / "pool.yaml")
    return root / "pool.yaml"


def test_saved_open_clip_merge_reloads_with_open_clip_alone(tmp_path: Path) -> None:
    pool_yaml, out = open_clip_pool(tmp_path), tmp_path / "merged"
    assert main(["merge", "method=task_arithmetic", f"modelpool={pool_yaml}", f"out={out}"]) == 0
    assert {"open_clip_model.safetensors", "open_clip_config.json", "README.md"} <= {p.name for p in out.iterdir()}
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 52, 3), dtype=np.uint8))
    image.save(tmp_path / "image.png")
    done = subprocess.run([sys.executable, "-c", RELOAD, str(out), str(tmp_path / "image.png"), str(tmp_path / "out.pt")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reloaded = torch.load(tmp_path / "out.pt", weights_only=True)

    pool, _, method = build(compose(["method=task_arithmetic", f"modelpool={pool_yaml}", "out=unused"], MergeSchema), "cpu")
    model = pool.model(checked_merge(method, pool))
    pixels = model.preprocess([Image.open(tmp_path / "image.png")])
    assert torch.equal(reloaded["pixels"], pixels)
    with torch.no_grad():
        torch.testing.assert_close(reloaded["image"], model.vision(pixels), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(reloaded["text"], model.encode_texts(TEXTS), rtol=1e-5, atol=1e-6)
    assert float(reloaded["logit_scale"]) == model.logit_scale
    base = open_clip.create_model("tiny-oc", pretrained=str(tmp_path / "base.safetensors")).eval()
    with torch.no_grad():  # merged: the image encoder differs from the base's, the text tower is the base's
        assert not torch.allclose(reloaded["image"], base.encode_image(pixels), atol=1e-3)
        assert torch.equal(reloaded["text"], base.encode_text(open_clip.get_tokenizer("tiny-oc")(TEXTS)))


def test_streaming_an_open_clip_pool_is_refused_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pool_yaml = open_clip_pool(tmp_path)
    assert main(["merge", "method=task_arithmetic", f"modelpool={pool_yaml}", f"out={tmp_path / 'm'}", "stream=true"]) == 2
    assert "stream=true is not possible for pool" in capsys.readouterr().err and not (tmp_path / "m").exists()
