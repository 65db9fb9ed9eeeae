"""The input domain of each mini vision task: signs for *shape*, flowers for *colour*, full-frame
patterns for *texture*, dots in a night sky for *count*, a marker on a noisy field for
*position*, gratings for *orientation*, house-number plates for *digit* (research/mini_v5).

Two knobs in [0, 1] set how an image is drawn. ``hard`` scales the generic nuisances (pixel
noise, jitter, contrast, size). ``novel`` scales each domain's own range nuisance (rotation
of signs, petals in shadow, pattern scale, star size, marker size and outline, grating
period, digit slant and stroke): the base's pretraining images draw it from a low range and
the task images from a wider one, so part of every test set lies outside what the base saw,
a stand-in for the gap between CLIP's web images and a benchmark's dataset.

Images are drawn at twice their size and box-filtered; all randomness comes from the
``numpy`` generator passed in, so an image is a function of the generator's state.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw

from fusionbench.mini.vision_tasks import DIGIT_SEGMENTS, IMAGE_SIZE, PALETTE, SEGMENTS, SHAPE_OUTLINES, SHAPES, TEXTURES

SIZE = IMAGE_SIZE
SUPERSAMPLING = 2
CANVAS = SIZE * SUPERSAMPLING

_YY, _XX = np.mgrid[0:CANVAS, 0:CANVAS]
Renderer = Callable[[int, np.random.Generator, float, float], np.ndarray]


def random_colour(rng: np.random.Generator, lo: float = 0, hi: float = 255) -> tuple[int, int, int]:
    r, g, b = (int(v) for v in rng.uniform(lo, hi, 3))
    return r, g, b


def _finish(canvas: np.ndarray, rng: np.random.Generator, hard: float) -> np.ndarray:
    """Box-filter the canvas to SIZE x SIZE and add pixel noise."""
    small = canvas.reshape(SIZE, SUPERSAMPLING, SIZE, SUPERSAMPLING, 3).mean(axis=(1, 3))
    small = small + rng.normal(0, 3 + 12 * hard, size=small.shape)
    return np.clip(np.rint(small), 0, 255).astype(np.uint8)


def _fade(background: np.ndarray, drawn: np.ndarray, contrast: float) -> np.ndarray:
    return background + contrast * (drawn - background)


def _shape(k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    ss = SUPERSAMPLING
    bg = np.zeros((CANVAS, CANVAS, 3)) + rng.uniform(90, 170) + rng.normal(0, 10, 3)
    bg += (_YY / CANVAS)[:, :, None] * rng.uniform(-40, 40)
    im = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    jitter = (2 + 6 * hard) * ss
    cx, cy = CANVAS / 2 + rng.uniform(-1, 1) * jitter, CANVAS / 2 + rng.uniform(-1, 1) * jitter
    half_len, half_wid = rng.uniform(9, 12) * ss * (1 - 0.4 * hard * rng.random()), rng.uniform(4.5, 5.5) * ss
    angle = math.radians(rng.uniform(-1, 1) * (20 + 160 * novel))
    cos, sin = math.cos(angle), math.sin(angle)
    name = SHAPES[k]
    points = [(cx + half_wid * u * cos - half_len * v * sin, cy + half_wid * u * sin + half_len * v * cos) for u, v in SHAPE_OUTLINES[name]]
    fill = (230, 230, 230) if rng.random() < 0.5 else (30, 30, 30)
    draw = ImageDraw.Draw(im)
    if name == "ring":
        draw.line(points + points[:1], fill=fill, width=int(2.2 * ss), joint="curve")
    else:
        draw.polygon(points, fill=fill)
    return _finish(_fade(bg, np.asarray(im, float), 1 - 0.6 * hard * rng.random()), rng, hard)


def _flower(k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    ss, g = SUPERSAMPLING, rng.uniform(60, 120)
    leaves = rng.normal(0, 20, (CANVAS // 8, CANVAS // 8, 3)).repeat(8, 0).repeat(8, 1)
    bg = np.array([g * 0.6, g, g * 0.5])[None, None, :] + leaves
    im = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(im)
    shade = 1 - 0.5 * novel * rng.random()  # petals in shadow
    petal = tuple(int(v) for v in np.clip(shade * PALETTE[k] + rng.normal(0, 10 + 35 * hard, 3), 0, 255))
    n = int(rng.integers(5, 8))
    cx, cy = CANVAS / 2 + rng.uniform(-6, 6) * ss, CANVAS / 2 + rng.uniform(-6, 6) * ss
    r = rng.uniform(4, 6) * ss * (1 - 0.5 * hard * rng.random())
    for i in range(n):
        px, py = cx + r * math.cos(2 * math.pi * i / n), cy + r * math.sin(2 * math.pi * i / n)
        draw.ellipse((px - 0.7 * r, py - 0.7 * r, px + 0.7 * r, py + 0.7 * r), fill=petal)
    draw.ellipse((cx - 0.4 * r, cy - 0.4 * r, cx + 0.4 * r, cy + 0.4 * r), fill=(240, 220, 60))
    return _finish(_fade(bg, np.asarray(im, float), 1 - 0.5 * hard * rng.random()), rng, hard)


def _pattern(k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    scale = rng.uniform(0.8, 1.3) / (1 + 1.2 * novel * rng.random())  # larger patterns
    y = (_YY / SUPERSAMPLING * scale + rng.integers(0, 8)).astype(int)
    x = (_XX / SUPERSAMPLING * scale + rng.integers(0, 8)).astype(int)
    masks = {
        "plain": lambda: np.zeros((CANVAS, CANVAS)),
        "striped": lambda: (((x + y) // 2) % 2).astype(float),
        "checkered": lambda: (((x // 3) + (y // 3)) % 2).astype(float),
        "dotted": lambda: ((x % 4 == 0) & (y % 4 == 0)).astype(float),
        "gridded": lambda: ((x % 5 == 0) | (y % 5 == 0)).astype(float),
        "speckled": lambda: np.kron((rng.random((SIZE, SIZE)) < 0.3).astype(float), np.ones((SUPERSAMPLING, SUPERSAMPLING))),
    }
    mask = masks[TEXTURES[k]]()
    c0, c1 = np.array(random_colour(rng)), np.array(random_colour(rng))
    canvas = c0[None, None] + (1 - 0.7 * hard * rng.random()) * (c1 - c0)[None, None] * mask[:, :, None]
    return _finish(canvas, rng, hard)


def _sky(k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    ss = SUPERSAMPLING
    im = Image.new("RGB", (CANVAS, CANVAS), random_colour(rng, 0, 50))
    draw = ImageDraw.Draw(im)
    for slot in rng.choice(16, size=k + 1, replace=False):
        cx, cy = (4 + 8 * (slot % 4) + rng.uniform(-2, 2)) * ss, (4 + 8 * (slot // 4) + rng.uniform(-2, 2)) * ss
        r, lum = rng.uniform(1.6, 2.4) * ss * (1 - 0.45 * novel), int(rng.uniform(200 - 120 * hard, 255))  # smaller stars
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(lum, lum, lum - 20))
    return _finish(np.asarray(im, float), rng, hard)


def _marker(k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    ss = SUPERSAMPLING
    bg = rng.uniform(100, 160) + rng.normal(0, 15 + 20 * hard, (CANVAS // 4, CANVAS // 4, 3)).repeat(4, 0).repeat(4, 1)
    im = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    jitter = 2 + 5 * hard
    cx, cy = ((k % 2) * 16 + 8 + rng.uniform(-1, 1) * jitter) * ss, ((k // 2) * 16 + 8 + rng.uniform(-1, 1) * jitter) * ss
    r = rng.uniform(3, 4.5) * ss * (1 - 0.45 * novel)  # smaller markers, without an outline
    outline = (0, 0, 0) if rng.random() >= novel else None
    ImageDraw.Draw(im).rectangle((cx - r, cy - r, cx + r, cy + r), fill=random_colour(rng), outline=outline, width=ss)
    return _finish(np.asarray(im, float), rng, hard)


def _grating(k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    angle = math.radians(45 * k + rng.uniform(-1, 1) * (5 + 15 * hard))  # stripes run along the long axis
    across = _XX * math.cos(angle) + _YY * math.sin(angle)
    mask = (np.sin(2 * math.pi * across / (rng.uniform(5, 8) * (1 - 0.55 * novel) * SUPERSAMPLING) + rng.uniform(0, 6.3)) > 0).astype(float)
    c0, c1 = np.array(random_colour(rng)), np.array(random_colour(rng))
    canvas = c0[None, None] + (1 - 0.7 * hard * rng.random()) * (c1 - c0)[None, None] * mask[:, :, None]
    return _finish(canvas, rng, hard)


def _glyph(draw: ImageDraw.ImageDraw, digit: int, left: float, top: float, width: float, half: float, fill: tuple[int, ...], thickness: int, slant: float) -> None:
    for segment in DIGIT_SEGMENTS[digit]:
        (u0, v0), (u1, v1) = SEGMENTS[segment]
        draw.line([(left + u * width + slant * (2 - v) * half, top + v * half) for u, v in ((u0, v0), (u1, v1))], fill=fill, width=thickness)


def _plate(k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    ss = SUPERSAMPLING
    plate = random_colour(rng, 30, 220)
    im = Image.new("RGB", (CANVAS, CANVAS), plate)
    draw = ImageDraw.Draw(im)
    ink = tuple(int(255 - v + rng.normal(0, 20)) for v in plate)
    width, half = rng.uniform(9, 11) * ss, rng.uniform(10, 12) * ss
    left = CANVAS / 2 - width / 2 + rng.uniform(-1, 1) * (1 + 2 * hard) * ss
    top = CANVAS / 2 - half + rng.uniform(-1, 1) * ss
    thickness, slant = int(rng.uniform(2.2, 3.0) * ss * (1 - 0.4 * novel)), rng.uniform(-1, 1) * (0.15 + 0.45 * novel)  # thinner, slanted digits
    _glyph(draw, k, left, top, width, half, ink, thickness, slant)
    if hard > 0.6:  # neighbouring digits of the house number, cut by the frame
        for side in (-1, 1):
            if rng.random() < hard:
                _glyph(draw, int(rng.integers(10)), left + side * (width + 4 * ss), top, width, half, ink, thickness, slant)
    return _finish(np.asarray(im, float), rng, hard)


RENDERERS: dict[str, Renderer] = {
    "shape": _shape, "colour": _flower, "texture": _pattern, "count": _sky,
    "position": _marker, "orientation": _grating, "digit": _plate,
}  # fmt: skip


def render(task: str, k: int, rng: np.random.Generator, hard: float, novel: float) -> np.ndarray:
    """One (SIZE, SIZE, 3) uint8 image of class ``k`` of ``task``."""
    return RENDERERS[task](k, rng, hard, novel)


def images(task: str, labels: np.ndarray, rng: np.random.Generator, hard: tuple[float, float], novel: tuple[float, float]) -> np.ndarray:
    """(N, SIZE, SIZE, 3) images, ``hard`` and ``novel`` drawn uniformly from their ranges per image."""
    return np.stack([render(task, int(k), rng, float(rng.uniform(*hard)), float(rng.uniform(*novel))) for k in labels])
