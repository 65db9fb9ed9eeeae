"""Tiny CLIP and T5 bases: configurations, pretraining loops and the scores of the pretrained models.

The bases are instances of the very classes the real pools load (``CLIPModel``,
``T5ForConditionalGeneration``), only small: a 3-layer ViT on 32x32 images with 8x8
patches, and a 2+2-layer T5 with d_model 64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from transformers import (
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPTokenizer,
    T5Config,
    T5ForConditionalGeneration,
    T5Tokenizer,
)

from fusionbench.mini.text_data import Example, TextTask
from fusionbench.mini.vision_tasks import IMAGE_SIZE, VisionTask

Progress = Callable[[int], None]  # called with the number of steps just completed


@dataclass(frozen=True)
class TrainSchedule:
    """AdamW with linear warm-up then cosine decay to zero."""

    steps: int
    batch_size: int
    lr: float
    weight_decay: float = 0.1
    warmup: float = 0.05  # fraction of steps
    locked_text: float = 0.0  # CLIP only: fraction of steps during which the text tower is frozen

    def optimizer(self, model: torch.nn.Module) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
        opt = torch.optim.AdamW(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        warm = max(1, int(self.warmup * self.steps))

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1.0 + math.cos(math.pi * (step - warm) / max(1, self.steps - warm)))

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)


# ---------------------------------------------------------------------------- CLIP
def clip_config(tokenizer: CLIPTokenizer) -> CLIPConfig:
    """A CLIP small enough for a CPU: a 3-layer ViT (8x8 patches of 32x32 images, width 96) and a
    2-layer text tower (width 64), projected to 64 dimensions."""
    return CLIPConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=64,
            intermediate_size=256,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=tokenizer.model_max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        ),
        vision_config=dict(
            hidden_size=96,
            intermediate_size=384,
            num_hidden_layers=3,
            num_attention_heads=4,
            image_size=IMAGE_SIZE,
            patch_size=8,
        ),
        projection_dim=64,
    )


def new_clip(tokenizer: CLIPTokenizer, seed: int) -> CLIPModel:
    """A randomly initialised tiny CLIP.

    The ViT's position embeddings start at std 0.2 instead of CLIP's 0.02: with the small
    init a CLIP this size learns no spatial attribute (where the shape is) in its budget.
    """
    torch.manual_seed(seed)
    model = CLIPModel(clip_config(tokenizer))
    torch.nn.init.normal_(model.vision_model.embeddings.position_embedding.weight, std=0.2)
    return model


def clip_image_processor() -> CLIPImageProcessor:
    """The processor of the tiny CLIP: 32x32 input, OpenAI CLIP's mean and std."""
    return CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    )


def pixel_values(images: np.ndarray, processor: CLIPImageProcessor) -> torch.Tensor:
    """(N, H, W, 3) uint8 images of the processor's size -> normalised (N, 3, H, W) float tensor.

    Equal to the processor's own output for images already at its crop size (no resize or
    crop happens), and much faster for tens of thousands of images.
    """
    x = torch.from_numpy(images).float().div_(255.0).permute(0, 3, 1, 2)
    mean = torch.tensor(processor.image_mean).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std).view(1, 3, 1, 1)
    return ((x - mean) / std).contiguous()


CaptionBatch = Callable[[np.ndarray, np.random.Generator], tuple[list[str], torch.Tensor]]


def pretrain_clip(
    model: CLIPModel,
    tokenizer: CLIPTokenizer,
    images: torch.Tensor,
    captions: CaptionBatch,
    schedule: TrainSchedule,
    seed: int,
    progress: Progress | None = None,
) -> list[float]:
    """Contrastive image-caption pretraining; returns the loss of every step.

    ``captions(indices, rng)`` returns a caption per image and the (B, B) boolean matrix
    ``match[i, j]``: caption i describes image j (always its own). A caption that names only
    some attributes describes many images, so the symmetric InfoNCE loss spreads each row's
    target uniformly over its matches (with one caption per image that matches nothing else
    this is exactly CLIP's loss).

    For the first ``schedule.locked_text`` of the steps the text tower stays frozen at its
    random initialisation: the image tower first aligns with fixed caption embeddings.
    Trained jointly from the start, both towers of a CLIP this small collapse to one point
    (uniform logits) and stay there for hundreds of steps.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt, sched = schedule.optimizer(model)
    model.train()
    losses: list[float] = []
    text_params = list(model.text_model.parameters()) + list(model.text_projection.parameters())
    for step in range(schedule.steps):
        idx = rng.choice(len(images), size=schedule.batch_size, replace=False)
        texts, match = captions(idx, rng)
        text = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        out = model(input_ids=text.input_ids, attention_mask=text.attention_mask, pixel_values=images[idx])
        target = match.float()
        loss = 0.5 * (
            _soft_cross_entropy(out.logits_per_text, target / target.sum(1, keepdim=True))
            + _soft_cross_entropy(out.logits_per_image, (target / target.sum(0, keepdim=True)).T)
        )
        frozen = text_params if step < schedule.locked_text * schedule.steps else []
        losses.append(_update(model, opt, sched, loss, frozen))
        if progress is not None:
            progress(1)
    model.eval()
    return losses


def _update(
    model: torch.nn.Module, opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR, loss: torch.Tensor,
    frozen: Sequence[torch.nn.Parameter] = (),
) -> float:
    """One step: backpropagate ``loss``, drop the gradients of ``frozen``, clip the norm at 1, update; returns the loss."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    for p in frozen:
        p.grad = None
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return loss.item()


def _soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


@torch.no_grad()
def zero_shot_head(model: CLIPModel, tokenizer: CLIPTokenizer, task: VisionTask) -> torch.Tensor:
    """(num_classes, dim) classifier: the mean of normalised text embeddings over the templates, renormalised."""
    prompts = [t.format(c=c) for c in task.classnames for t in task.templates]
    text = tokenizer(prompts, padding=True, return_tensors="pt")
    emb = F.normalize(_features(model.get_text_features(**text)), dim=-1)
    head = emb.view(task.num_classes, len(task.templates), -1).mean(dim=1)
    return F.normalize(head, dim=-1)


@torch.no_grad()
def zero_shot_accuracy(model: CLIPModel, head: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 500) -> float:
    """Accuracy of argmax(scaled cosine(image embedding, head))."""
    correct = 0
    for start in range(0, len(images), batch_size):
        emb = F.normalize(_features(model.get_image_features(pixel_values=images[start : start + batch_size])), dim=-1)
        logits = model.logit_scale.exp() * emb @ head.T
        correct += int((logits.argmax(dim=-1) == labels[start : start + batch_size]).sum())
    return correct / len(images)


def _features(out: torch.Tensor | object) -> torch.Tensor:
    """``get_*_features`` returns a tensor or, in newer transformers, an output with ``pooler_output``."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output  # type: ignore[attr-defined]


# ------------------------------------------------------------------------------ T5
def t5_config(tokenizer: T5Tokenizer) -> T5Config:
    """A Flan-T5-shaped model (gated-GELU, unscaled decoder output) with d_model 64 and 2+2 layers.

    transformers 5 ties T5's LM head to its token embedding (``shared``) whatever the config
    says; ``tie_word_embeddings=False`` still selects v1.1's unscaled decoder output.
    """
    return T5Config(  # type: ignore[call-arg]  # generic config keys travel through **kwargs
        vocab_size=len(tokenizer),
        d_model=64,
        d_kv=16,
        d_ff=256,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        dropout_rate=0.0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.pad_token_id,
    )


def new_t5(tokenizer: T5Tokenizer, seed: int) -> T5ForConditionalGeneration:
    """A randomly initialised tiny T5.

    The LM head (tied to the token embedding) starts at std d_model^-0.5 instead of T5's
    1.0, which would start the loss near 30.
    """
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(t5_config(tokenizer))
    torch.nn.init.normal_(model.lm_head.weight, std=model.config.d_model**-0.5)
    return model


def span_corruption(words: Sequence[str], rng: np.random.Generator, rate: float = 0.15, mean_span: float = 3.0) -> tuple[str, str]:
    """T5's denoising objective on a word sequence: masked spans become sentinels in the input
    and are spelled out, each after its sentinel, in the target."""
    n = len(words)
    n_spans = max(1, round(n * rate / mean_span))
    starts = sorted(rng.choice(n, size=min(n_spans, n), replace=False).tolist())
    source: list[str] = []
    target: list[str] = []
    pos = 0
    for i, start in enumerate(starts):
        if start < pos:
            continue
        end = min(n, start + max(1, int(rng.poisson(mean_span - 1)) + 1))
        sentinel = f"<extra_id_{i}>"
        source += [*words[pos:start], sentinel]
        target += [sentinel, *words[start:end]]
        pos = end
    source += words[pos:]
    return " ".join(source), " ".join(target)


def pretrain_t5(
    model: T5ForConditionalGeneration,
    tokenizer: T5Tokenizer,
    sample: Callable[[int, np.random.Generator], list[tuple[str, str]]],
    schedule: TrainSchedule,
    seed: int,
    progress: Progress | None = None,
) -> list[float]:
    """Teacher-forced cross-entropy on (input, target) pairs drawn by ``sample(batch_size, rng)``."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    opt, sched = schedule.optimizer(model)
    model.train()
    losses: list[float] = []
    for _ in range(schedule.steps):
        sources, targets = zip(*sample(schedule.batch_size, rng))
        enc = tokenizer(list(sources), padding=True, truncation=True, return_tensors="pt")
        labels = tokenizer(list(targets), padding=True, return_tensors="pt").input_ids
        labels[labels == tokenizer.pad_token_id] = -100
        loss = model(input_ids=enc.input_ids, attention_mask=enc.attention_mask, labels=labels).loss
        losses.append(_update(model, opt, sched, loss))
        if progress is not None:
            progress(1)
    model.eval()
    return losses


@torch.no_grad()
def generate(model: T5ForConditionalGeneration, tokenizer: T5Tokenizer, sources: Sequence[str], batch_size: int = 256, max_new_tokens: int = 8) -> list[str]:
    """Greedy decoding of each source text."""
    out: list[str] = []
    for start in range(0, len(sources), batch_size):
        enc = tokenizer(list(sources[start : start + batch_size]), padding=True, truncation=True, return_tensors="pt")
        ids = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)  # type: ignore[misc]
        out += [t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True)]  # type: ignore[arg-type]
    return out


def parse_score(text: str) -> float | None:
    """The float a model wrote for a similarity task, or None when it is not a number."""
    try:
        return float(text)
    except ValueError:
        return None


def t5_score(model: T5ForConditionalGeneration, tokenizer: T5Tokenizer, task: TextTask, examples: Sequence[Example]) -> dict[str, Any]:
    """The task's metric on ``examples`` with the paper template and greedy decoding: exact-match
    accuracy, or (similarity) Spearman correlation of the parsed floats, unparseable counted as 0."""
    predictions = generate(model, tokenizer, [task.input_text(e) for e in examples])
    if task.label_names is not None:
        hits = [p == task.target(float(e["label"])) for p, e in zip(predictions, examples)]  # type: ignore[arg-type]
        return {"metric": "accuracy", "value": round(float(np.mean(hits)), 4), "n": len(examples)}
    parsed = [parse_score(p) for p in predictions]
    values = [0.0 if v is None else v for v in parsed]
    gold = [float(e["label"]) for e in examples]  # type: ignore[arg-type]
    constant = len(set(values)) < 2 or len(set(gold)) < 2  # a constant prediction ranks nothing
    rho = 0.0 if constant else float(spearmanr(values, gold).statistic)
    return {"metric": "spearman", "value": round(rho, 4), "n": len(examples), "unparseable": parsed.count(None)}
