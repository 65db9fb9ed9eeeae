"""The design of the mini vision world (version 6: research/mini_v5 design v36 with position's
room widened): task images, pretraining images and their captions, and the base trained on them.

Zero-shot error has two sources, as CLIP's has on the real benchmark:

* images outside the base's range: pretraining images draw each domain's own nuisance
  (``vision_domains``: ``novel``) from [0, 0.3], task images mostly from [0.3, 1] (``TASK_RANGES``);
* classes the captions never name (``UNNAMED``, a quarter of each task's classes, two of
  count's five): the base sees their images, captioned only by their domain ("a flower."),
  and knows their names only as words of the vocabulary.

Every other caption names its image's class (in a zero-shot template or one of three other
phrasings) with probability ``NAMED_SHARE`` and only the domain otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from transformers import CLIPModel, CLIPTokenizer

from fusionbench.mini import bases, vision_domains
from fusionbench.mini.tokenization import train_clip_tokenizer
from fusionbench.mini.vision_tasks import VISION_TASKS

TASKS = tuple(VISION_TASKS)
Range = tuple[float, float]
TASK_RANGES: dict[str, tuple[Range, Range]] = {
    **{t: ((0.0, 0.4), (0.3, 1.0)) for t in TASKS},
    "colour": ((0.0, 0.4), (0.9, 1.0)),
    "count": ((0.3, 0.7), (0.9, 1.0)),
    "orientation": ((0.3, 0.7), (0.7, 1.0)),
    "position": ((0.0, 0.4), (0.3, 0.6)),
}  # (hard, novel) ranges of each task's images: harder for the three tasks the base otherwise leaves
# under 20 points of room; position's novel range stops at 0.6, where its small unoutlined markers
# still show in the noisy field, so its fine-tunes have room above the 20-point rule (world version 6)
PRETRAIN_HARD, PRETRAIN_NOVEL = (0.0, 0.5), (0.0, 0.3)  # ranges of the pretraining images
NAMED_SHARE = 0.7  # share of pretraining captions of a named class that name it
UNNAMED: dict[str, tuple[int, ...]] = {
    "shape": (2, 4),  # diamond, bowtie
    "colour": (0, 2),  # red, yellow
    "texture": (0, 5),  # plain, speckled
    "count": (1, 2),  # two dots, three dots
    "position": (0,),  # top left
    "orientation": (0,),  # vertical
    "digit": (3, 7),
}  # classes no pretraining caption names
CAPTION_FORMS: dict[str, tuple[str, ...]] = {
    "shape": ("a {c} sign.", "a picture of a {c}.", "{c} shape."),
    "colour": ("a {c} blossom.", "{c} petals.", "a picture of a {c} flower."),
    "texture": ("{c} fabric.", "a {c} surface.", "a picture of a {c} texture."),
    "count": ("{c} in a dark sky.", "a night with {c}.", "a picture of {c}."),
    "position": ("a square marker at the {c}.", "marker {c}.", "a picture of a marker in the {c}."),
    "orientation": ("{c} lines.", "a {c} grating.", "a picture of {c} stripes."),
    "digit": ("house number {c}.", "the digit {c}.", "a picture of the number {c}."),
}  # besides the task's zero-shot templates
DOMAIN_ONLY: dict[str, str] = {
    "shape": "a sign.", "colour": "a flower.", "texture": "a texture.", "count": "dots in the sky.",
    "position": "a marker.", "orientation": "stripes.", "digit": "a house number.",
}  # fmt: skip
TOKENIZER_CAPTIONS = 4000  # pretraining captions the tokenizer's merges are learned from, besides every prompt


def task_split(task: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` label-balanced (images, labels) of ``task``, in random order."""
    labels = rng.permutation(np.arange(n) % VISION_TASKS[task].num_classes)
    hard, novel = TASK_RANGES[task]
    return vision_domains.images(task, labels, rng, hard, novel), labels


@dataclass(frozen=True)
class PretrainingSet:
    """Images of every domain, each with its task and class, drawn from the pretraining ranges."""

    images: np.ndarray  # (N, 32, 32, 3) uint8
    tasks: np.ndarray  # index into TASKS
    labels: np.ndarray

    @staticmethod
    def sample(n: int, rng: np.random.Generator) -> "PretrainingSet":
        tasks = rng.integers(0, len(TASKS), n)
        labels = np.array([rng.integers(0, VISION_TASKS[TASKS[d]].num_classes) for d in tasks])
        images = []
        for d, k in zip(tasks, labels):
            hard, novel = float(rng.uniform(*PRETRAIN_HARD)), float(rng.uniform(*PRETRAIN_NOVEL))
            images.append(vision_domains.render(TASKS[d], int(k), rng, hard, novel))
        return PretrainingSet(np.stack(images), tasks, labels)


def caption(task: str, k: int, rng: np.random.Generator) -> tuple[str, tuple[int, ...]]:
    """A pretraining caption of an image of class ``k`` of ``task``, and the classes of ``task`` it is true of."""
    if k in UNNAMED[task] or rng.random() >= NAMED_SHARE:
        return DOMAIN_ONLY[task], tuple(range(VISION_TASKS[task].num_classes))
    forms = VISION_TASKS[task].templates + CAPTION_FORMS[task]
    return forms[int(rng.integers(len(forms)))].format(c=VISION_TASKS[task].classnames[k]), (k,)


def caption_batch(data: PretrainingSet, idx: np.ndarray, rng: np.random.Generator) -> tuple[list[str], torch.Tensor]:
    """Captions of the images ``idx`` and the (B, B) matrix ``match[i, j]``: caption i is true of image j."""
    out = [caption(TASKS[data.tasks[i]], int(data.labels[i]), rng) for i in idx]
    tasks, labels = data.tasks[idx], data.labels[idx]
    true_of = np.array([[labels[j] in classes for j in range(len(idx))] for _, classes in out])
    match = (tasks[:, None] == tasks[None, :]) & true_of
    return [text for text, _ in out], torch.from_numpy(match | np.eye(len(idx), dtype=bool))


def tokenizer_corpus(data: PretrainingSet, rng: np.random.Generator) -> list[str]:
    """Pretraining captions and every phrasing of every class name: the tokenizer knows the names
    of unnamed classes as words, as CLIP's knows a benchmark's class names."""
    corpus = [caption(TASKS[d], int(k), rng)[0] for d, k in zip(data.tasks[:TOKENIZER_CAPTIONS], data.labels[:TOKENIZER_CAPTIONS])]
    corpus += [f.format(c=c) for t in TASKS for f in VISION_TASKS[t].templates + CAPTION_FORMS[t] for c in VISION_TASKS[t].classnames]
    return corpus + list(DOMAIN_ONLY.values())


PRETRAIN_LR, LOCKED_TEXT = 2e-3, 0.3  # the base's peak learning rate; share of steps with the text tower frozen


def train_base(
    examples: int, steps: int, batch_size: int, rng: np.random.Generator, init_seed: int, train_seed: int,
    progress: Callable[[int], None] | None = None,
) -> tuple[CLIPModel, CLIPTokenizer, list[float]]:
    """Sample ``examples`` pretraining images, learn the tokenizer, pretrain a tiny CLIP contrastively for
    ``steps`` (``bases.pretrain_clip``); returns it, its tokenizer and the loss of every step."""
    data = PretrainingSet.sample(examples, rng)
    tokenizer = train_clip_tokenizer(tokenizer_corpus(data, rng))
    model = bases.new_clip(tokenizer, init_seed)
    pixels = bases.pixel_values(data.images, bases.clip_image_processor())
    schedule = bases.TrainSchedule(steps, batch_size, lr=PRETRAIN_LR, locked_text=LOCKED_TEXT)
    losses = bases.pretrain_clip(model, tokenizer, pixels, lambda idx, r: caption_batch(data, idx, r), schedule, train_seed, progress)
    return model, tokenizer, losses
