"""Tiny datasets and models for task pool tests, built locally (the hub is never used).

Datasets are written in the real on-disk formats (``DatasetDict.save_to_disk`` and image
folders); models are randomly initialised transformers CLIP / T5 models from tiny configs
with a word-level tokenizer, wrapped in the family interfaces task pools receive.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import datasets
import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from torch import nn
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

from fusionbench.api.families import TextToTextModel, ZeroShotImageModel
from fusionbench.utils.cache import content_hash

PAD, EOS, UNK = "[PAD]", "[EOS]", "[UNK]"
IMAGE_SIZE = 32


class CallCounter:
    """Wraps a function and counts its calls."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.fn(*args, **kwargs)


class CountingTokenizer(PreTrainedTokenizerFast):
    """A fast tokenizer that counts its encoding calls."""

    calls = 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return super().__call__(*args, **kwargs)


def word_tokenizer(corpus: list[str]) -> CountingTokenizer:
    """Whitespace word-level tokenizer over ``corpus``'s words; appends [EOS]; ids 0, 1, 2 = PAD, EOS, UNK."""
    words = sorted({w for text in corpus for w in text.split()})
    vocab = {token: i for i, token in enumerate([PAD, EOS, UNK, *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(single=f"$A {EOS}", special_tokens=[(EOS, vocab[EOS])])
    return CountingTokenizer(tokenizer_object=tok, pad_token=PAD, eos_token=EOS, unk_token=UNK)


# ---------------------------------------------------------------------- CLIP
class ImageTower(nn.Module):
    """pixel_values -> projected image embeddings of a CLIPModel."""

    def __init__(self, clip: CLIPModel) -> None:
        super().__init__()
        self.clip = clip

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.clip.get_image_features(pixel_values=pixel_values).pooler_output


@dataclass
class TinyCLIP:
    model: ZeroShotImageModel  # what a task pool receives
    clip: CLIPModel
    processor: CLIPImageProcessor
    tokenizer: CountingTokenizer


def tiny_clip(corpus: list[str], seed: int = 0) -> TinyCLIP:
    """A random CLIPModel (32x32 images, 16-d embeddings) whose tokenizer knows ``corpus``'s words."""
    tokenizer = word_tokenizer(corpus)
    text = dict(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=64, pad_token_id=0, eos_token_id=1, bos_token_id=1)
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=IMAGE_SIZE, patch_size=8)
    torch.manual_seed(seed)
    clip = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})

    def encode_texts(texts: list[str]) -> torch.Tensor:
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        return clip.get_text_features(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).pooler_output

    model = ZeroShotImageModel(
        vision=ImageTower(clip),
        encode_texts=encode_texts,
        preprocess=lambda images: processor(images=images, return_tensors="pt")["pixel_values"],
        logit_scale=float(clip.logit_scale.exp().detach()),
        text_fingerprint=f"tiny-clip-text-{seed}-{content_hash(tokenizer.get_vocab())[:8]}",
        preprocess_fingerprint=content_hash(processor.to_dict()),
    )
    return TinyCLIP(model, clip, processor, tokenizer)


def random_images(n: int, seed: int) -> list[Image.Image]:
    """Random images of varying sizes; every fourth is greyscale (the pool must convert it to RGB)."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = int(rng.integers(30, 48)), int(rng.integers(30, 48))
        image = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        images.append(image.convert("L") if i % 4 == 3 else image)
    return images


def save_image_dataset(
    path: Path,
    splits: dict[str, tuple[list[Image.Image], list[int]]],
    classnames: Optional[list[str]],
    image_column: str = "image",
    label_column: str = "label",
) -> Path:
    """A DatasetDict saved with save_to_disk; labels are a ClassLabel over ``classnames`` (plain ints when None)."""
    label = datasets.ClassLabel(names=classnames) if classnames else datasets.Value("int64")
    features = datasets.Features({image_column: datasets.Image(), label_column: label})
    dd = datasets.DatasetDict(
        {s: datasets.Dataset.from_dict({image_column: im, label_column: y}, features=features) for s, (im, y) in splits.items()}
    )
    dd.save_to_disk(str(path))
    return path


def save_image_folder(path: Path, splits: dict[str, tuple[list[Image.Image], list[int]]], classnames: list[str]) -> Path:
    """An image folder ``<split>/<class name>/<i>.png`` (classes are numbered in sorted folder order)."""
    for split, (images, labels) in splits.items():
        for i, (image, y) in enumerate(zip(images, labels)):
            folder = path / split / classnames[y]
            folder.mkdir(parents=True, exist_ok=True)
            image.save(folder / f"{i:04d}.png")
    return path


# ------------------------------------------------------------------------ T5
def tiny_t5(texts: list[str], outputs: list[str], seed: int = 0) -> TextToTextModel:
    """A random T5 whose tokenizer knows ``texts``' words and whose generated tokens are among ``outputs``.

    T5 ties its LM head to the token embeddings. Every row is shrunk a hundredfold (the
    encoder's RMS norms undo the scale), and the rows of ``outputs`` become large prototypes:
    the centred first decoder states of a few of ``texts``, themselves centred across outputs
    (so one output always has a clearly positive logit). Which output wins depends on the input.
    """
    tokenizer = word_tokenizer(texts + outputs)
    torch.manual_seed(seed)
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=8, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=4,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    module = T5ForConditionalGeneration(config).eval()
    with torch.no_grad():
        module.shared.weight.mul_(0.01)
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        start = torch.zeros(len(texts), 1, dtype=torch.long)
        states = module(**enc, decoder_input_ids=start, output_hidden_states=True).decoder_hidden_states[-1][:, 0]
        centred = states - states.mean(0)
        prototypes = centred[torch.linspace(0, len(texts) - 1, len(outputs)).long()]
        prototypes = prototypes - prototypes.mean(0)
        module.shared.weight[tokenizer.convert_tokens_to_ids(outputs)] = 1000.0 * prototypes / prototypes.norm(dim=1, keepdim=True)
    return TextToTextModel(module=module, tokenizer=tokenizer, tokenizer_fingerprint=f"tiny-t5-{content_hash(tokenizer.get_vocab())[:8]}")


def save_text_dataset(path: Path, splits: dict[str, dict[str, Any]], label_names: Optional[list[str]] = None) -> Path:
    """A DatasetDict of text columns saved with save_to_disk; ``label`` is a ClassLabel when ``label_names`` is given."""
    dd = datasets.DatasetDict()
    for split, columns in splits.items():
        ds = datasets.Dataset.from_dict(columns)
        if label_names is not None:
            ds = ds.cast_column("label", datasets.ClassLabel(names=label_names))
        dd[split] = ds
    dd.save_to_disk(str(path))
    return path
