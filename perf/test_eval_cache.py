"""Zero-shot evaluation with cold against warm on-disk caches (preprocessed pixels, zero-shot heads).

Each evaluation builds a new ``CLIPVisionTaskPool`` (as a new run does) and evaluates one
10-class task with two prompt templates. Cold: an empty ``$FUSIONBENCH_HOME``, so images
are decoded and preprocessed and the text tower encodes every prompt. Warm: the caches a
previous run left (the untimed first warm call fills them). Cold and warm calls
alternate (``side_by_side``). Two scales:

* ``tiny-clip``: the mini world's scale (32x32 images, a 2-layer CLIP), 512 images;
* ``clip-vit-b16``: ViT-B/16 shapes with the standard CLIP processor (224x224), 16 images
  of 256x256 (CPU-sized: here the vision forward pass, which no cache can skip, dominates).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import datasets
import numpy as np
import pytest
import torch
from bench_helpers import side_by_side
from PIL import Image
from tokenizers.pre_tokenizers import ByteLevel
from transformers import CLIPImageProcessor, CLIPTokenizer

from fusionbench.api.families import ZeroShotImageModel
from fusionbench.models.presets import build_preset
from fusionbench.taskpools.vision import CLIPVisionTaskPool, CLIPVisionTaskPoolConfig, VisionTask

CLASSES = [f"class {i}" for i in range(10)]
TEMPLATES = ["a photo of a {c}.", "a picture of the {c}."]
SCALES = {"tiny-clip": (512, 48, 32), "clip-vit-b16": (16, 256, 224)}  # images, image side, processor size


def byte_tokenizer() -> CLIPTokenizer:
    """A byte-level CLIP tokenizer without merges (ids below 514 fit every CLIP text tower)."""
    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    return CLIPTokenizer(vocab=vocab, merges=[])


def zero_shot_model(preset: str, size: int) -> ZeroShotImageModel:
    clip = build_preset(preset, device="cpu", seed=0)
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size})
    tokenizer = byte_tokenizer()
    max_length = clip.config.text_config.max_position_embeddings

    def encode_texts(texts: list[str]) -> torch.Tensor:
        batch = tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        pooled = clip.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
        return clip.text_projection(pooled)

    def vision(pixel_values: torch.Tensor) -> torch.Tensor:
        return clip.visual_projection(clip.vision_model(pixel_values=pixel_values).pooler_output)

    class Tower(torch.nn.Module):
        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return vision(pixel_values)

    return ZeroShotImageModel(Tower(), encode_texts, lambda images: processor(images=images, return_tensors="pt")["pixel_values"],
                              logit_scale=100.0, text_fingerprint=f"bench-{preset}", preprocess_fingerprint=f"bench-{size}")


def image_dataset(folder: Path, count: int, side: int) -> str:
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8)) for _ in range(count)]
    labels = [i % len(CLASSES) for i in range(count)]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=CLASSES)})
    split = datasets.Dataset.from_dict({"image": images, "label": labels}, features=features)
    datasets.DatasetDict({"train": split.select(range(len(CLASSES))), "test": split}).save_to_disk(str(folder))
    return str(folder)


@pytest.mark.benchmark(group="eval-cache: one round = a cold and a warm evaluation, interleaved")
@pytest.mark.parametrize("scale", list(SCALES))
def test_cold_and_warm_evaluation(benchmark: Any, tmp_path_factory: pytest.TempPathFactory, scale: str) -> None:
    count, side, size = SCALES[scale]
    data = image_dataset(tmp_path_factory.mktemp("data"), count, side)
    model = zero_shot_model(scale, size)
    config = CLIPVisionTaskPoolConfig(type="clip_vision", name="bench", catalog=False, batch_size=64,
                                      definitions={"noise": VisionTask(dataset=data, classnames=CLASSES, templates=TEMPLATES)})
    warm_home = str(tmp_path_factory.mktemp("warm-home"))

    def evaluate() -> None:
        with torch.no_grad():
            CLIPVisionTaskPool(config).evaluate(model, ["noise"], "test")

    def home(path: str | None) -> Callable[[], None]:
        def setup() -> None:  # the filled caches (warm) or a new, empty home (cold)
            os.environ["FUSIONBENCH_HOME"] = path or tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp())

        return setup

    side_by_side(benchmark, {f"eval-cold:{scale}": evaluate, f"eval-warm:{scale}": evaluate},
                 rounds=4 if scale == "tiny-clip" else 2, setups={f"eval-cold:{scale}": home(None), f"eval-warm:{scale}": home(warm_home)})
