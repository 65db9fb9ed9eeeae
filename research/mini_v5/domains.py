"""Prototype domains for the mini vision world v5 (issue 16): one input domain per task.

The renderers now live in the product (``fusionbench.mini.vision_domains``); this module
adds the prototype's ``shift`` nuisances, measured in designs v14-v21.

Each of the seven tasks of the current world (same names and class names) gets images of
its own kind, as the real benchmark's datasets differ (house numbers, road signs,
textures, satellite fields, ...): signs for *shape*, flowers for *colour*, full-frame
patterns for *texture*, dots in a night sky for *count*, a marker on a noisy field for
*position*, gratings for *orientation* and house-number plates for *digit*.

``hard`` in [0, 1] scales the generic nuisances (pixel noise, jitter, contrast, size);
``novel`` in [0, 1] scales each domain's own range nuisance (rotation of signs, petals in
shadow, pattern scale, star size, marker size and outline, grating period, digit slant and
stroke): pretraining images draw it from a low range and task images from a wider one, so
part of each test set lies outside what the base saw (a stand-in for the web/benchmark gap
that leaves the base's features intact). ``shift`` adds each domain's own nuisance, one the pretraining images never show (clutter,
colour cast, low contrast under a gradient, faint stars, a decoy, a plaid, an inverted
plate): a stand-in for the gap between CLIP's web images and a benchmark dataset.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from fusionbench.mini.vision_domains import RENDERERS, SIZE, random_colour
from fusionbench.mini.vision_tasks import VISION_TASKS

TASKS: dict[str, tuple[str, ...]] = {t.name: t.classnames for t in VISION_TASKS.values()}
TEMPLATES: dict[str, tuple[str, ...]] = {t.name: t.templates for t in VISION_TASKS.values()}


def _shifted(task: str, k: int, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` with the task's own nuisance added."""
    a = image.astype(float)
    im = Image.fromarray(image)
    draw = ImageDraw.Draw(im)
    if task == "shape":  # clutter of small squares
        for _ in range(int(rng.integers(3, 6))):
            cx, cy, r = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.uniform(1.0, 2.2)
            draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=random_colour(rng))
        a = np.asarray(im, float)
    elif task == "colour":  # a colour cast of the light
        a = a * rng.uniform(0.7, 1.3, 3)[None, None]
    elif task == "texture":  # low contrast under a light gradient
        ramp = np.linspace(-1, 1, SIZE)
        ramp = ramp[None, :, None] if rng.random() < 0.5 else ramp[:, None, None]
        a = a.mean() + rng.uniform(0.35, 0.6) * (a - a.mean()) + rng.uniform(-50, 50) * ramp
    elif task == "count":  # faint stars
        for _ in range(int(rng.integers(3, 7))):
            grey = int(rng.uniform(70, 120))
            draw.point((rng.uniform(0, SIZE), rng.uniform(0, SIZE)), fill=(grey, grey, grey))
        a = np.asarray(im, float)
    elif task == "position":  # a dim decoy without an outline
        q, r = int(rng.integers(4)), rng.uniform(2, 3)
        cx, cy = (q % 2) * 16 + 8 + rng.uniform(-3, 3), (q // 2) * 16 + 8 + rng.uniform(-3, 3)
        draw.rectangle((cx - r, cy - r, cx + r, cy + r), fill=random_colour(rng, 80, 180))
        a = np.asarray(im, float)
    elif task == "orientation":  # a weaker grating of another orientation (a plaid)
        angle = math.radians(45 * ((k + int(rng.integers(1, 4))) % 4))
        yy, xx = np.mgrid[0:SIZE, 0:SIZE]
        across = xx * math.cos(angle) + yy * math.sin(angle)
        a = a + rng.uniform(25, 45) * ((np.sin(2 * math.pi * across / rng.uniform(3, 5) + rng.uniform(0, 6.3)) > 0) - 0.5)[:, :, None]
    elif task == "digit" and rng.random() < 0.5:  # an inverted plate
        a = 255 - a
    return np.clip(np.rint(a), 0, 255).astype(np.uint8)


def render(task: str, k: int, rng: np.random.Generator, hard: float, shift: bool, novel: float = 0.0) -> np.ndarray:
    """One (SIZE, SIZE, 3) uint8 image of class ``k`` of ``task``."""
    image = RENDERERS[task](k, rng, hard, novel)
    return _shifted(task, k, image, rng) if shift else image


def images(task: str, labels: np.ndarray, rng: np.random.Generator, hard: tuple[float, float], shift: bool, novel: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """(N, SIZE, SIZE, 3) images, ``hard`` and ``novel`` drawn uniformly from their ranges per image."""
    return np.stack([render(task, int(k), rng, float(rng.uniform(*hard)), shift, float(rng.uniform(*novel))) for k in labels])
