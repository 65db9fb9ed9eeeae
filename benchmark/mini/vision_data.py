"""The mini vision world: seven image-classification tasks over one distribution of scenes.

A scene is a 32x32 RGB picture split into four quadrants. One quadrant holds a coloured
elongated *shape* whose long axis has one of four *orientations*, a second holds a
seven-segment *digit*, a third a cluster of white *dots*; the background carries a
*texture*. Each task reads
one latent attribute of the same scene distribution (different label spaces, different
skills: colour, form, layout, counting, glyphs, texture):

    shape (6)  colour (8)  texture (6)  count (5)  position (4)  orientation (4)  digit (10)

A task's split is label-balanced (the task attribute is stratified, every other
attribute uniform). Captions for contrastive pretraining describe a random subset of a
scene's attributes and swap the names of some classes, so a base pretrained on them is a
meaningful but imperfect zero-shot classifier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator

import numpy as np
from PIL import Image, ImageDraw

IMAGE_SIZE = 32
_SS = 4  # supersampling factor: scenes are drawn at 128x128, then box-filtered to 32x32
_CANVAS = IMAGE_SIZE * _SS
_QUADRANT = _CANVAS // 2


@dataclass(frozen=True)
class VisionTask:
    """One attribute of the scene as a classification task."""

    name: str
    classnames: tuple[str, ...]
    templates: tuple[str, ...]  # zero-shot prompts, "{c}" is the class name

    @property
    def num_classes(self) -> int:
        return len(self.classnames)


SHAPES = ("bar", "oval", "diamond", "ring", "bowtie", "triangle")
COLOURS = ("red", "orange", "yellow", "green", "cyan", "blue", "purple", "pink")
TEXTURES = ("plain", "striped", "checkered", "dotted", "gridded", "speckled")
COUNTS = ("one dot", "two dots", "three dots", "four dots", "five dots")
POSITIONS = ("top left", "top right", "bottom left", "bottom right")
ORIENTATIONS = ("vertical", "rising", "horizontal", "falling")  # long axis at 0, 45, 90, 135 degrees clockwise
DIGITS = tuple(str(d) for d in range(10))

VISION_TASKS: dict[str, VisionTask] = {
    t.name: t
    for t in (
        VisionTask("shape", SHAPES, ("a photo of a {c}.", "a {c}.")),
        VisionTask("colour", COLOURS, ("a photo of a {c} shape.", "something {c}.")),
        VisionTask("texture", TEXTURES, ("a photo of a shape on a {c} background.", "a {c} background.")),
        VisionTask("count", COUNTS, ("a photo of a shape with {c}.", "{c}.")),
        VisionTask("position", POSITIONS, ("a photo of a shape in the {c}.", "something in the {c}.")),
        VisionTask("orientation", ORIENTATIONS, ("a photo of a {c} shape.", "something {c}.")),
        VisionTask("digit", DIGITS, ("a photo of a shape with the number {c}.", "the number {c}.")),
    )
}
ATTRIBUTES = tuple(VISION_TASKS)

# How often a pretraining caption mentions each attribute. Contrastive learning at this scale
# is all-or-nothing per attribute (within the budget an attribute ends up aligned almost
# perfectly or not at all), so the rates balance the attributes: easy ones are named less.
CAPTION_RATES: dict[str, float] = {
    "shape": 0.4,
    "colour": 0.25,
    "texture": 0.7,
    "count": 0.7,
    "position": 0.25,
    "orientation": 0.4,
    "digit": 0.5,
}
# Careless annotators: for the first K // 3 pairs of classes (0 and 1, 2 and 3, ...) of an
# attribute with K classes, every caption uses the other name of the pair. The base learns
# this wrong vocabulary consistently, so its zero-shot classifier is systematically wrong on
# those classes (at most 1 - 2 * (K // 3) / K right) while its image features tell them
# apart: an error that fine-tuning can fix.


def swapped_pairs(attribute: str) -> int:
    """How many class pairs of ``attribute`` the annotators name the wrong way round."""
    return VISION_TASKS[attribute].num_classes // 3


def annotator_name(attribute: str, value: int) -> int:
    """The class the annotators call class ``value`` of ``attribute`` (an involution)."""
    return value ^ 1 if value < 2 * swapped_pairs(attribute) else value

_PALETTE = np.array(
    [
        (220, 40, 40),
        (245, 140, 20),
        (230, 220, 40),
        (40, 180, 60),
        (40, 205, 220),
        (45, 75, 225),
        (140, 55, 205),
        (245, 110, 190),
    ],
    dtype=np.float64,
)

# Elongated shapes in unit coordinates (u across, v along the long axis, both in [-1, 1]).
_ELLIPSE = [(math.cos(a), math.sin(a)) for a in np.linspace(0.0, 2 * math.pi, 32, endpoint=False)]
_SHAPE_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "bar": [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)],
    "oval": _ELLIPSE,
    "diamond": [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)],
    "ring": _ELLIPSE,  # drawn as an outline
    "bowtie": [(-1.0, -1.0), (1.0, -1.0), (0.2, 0.0), (1.0, 1.0), (-1.0, 1.0), (-0.2, 0.0)],
    "triangle": [(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)],
}

# Seven-segment glyphs: segments a (top), b (upper right), c (lower right), d (bottom),
# e (lower left), f (upper left), g (middle), each a line in a unit box [0,1]x[0,2].
_SEGMENTS = {
    "a": ((0, 0), (1, 0)),
    "b": ((1, 0), (1, 1)),
    "c": ((1, 1), (1, 2)),
    "d": ((0, 2), (1, 2)),
    "e": ((0, 1), (0, 2)),
    "f": ((0, 0), (0, 1)),
    "g": ((0, 1), (1, 1)),
}
_DIGIT_SEGMENTS = ("abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg")


@dataclass(frozen=True)
class Scene:
    """The latent attributes of one picture (indices into each task's class names)."""

    shape: int
    colour: int
    texture: int
    count: int
    position: int
    orientation: int
    digit: int

    def label(self, task: str) -> int:
        return int(getattr(self, task))


def sample_scenes(rng: np.random.Generator, n: int, stratify: str | None = None) -> list[Scene]:
    """``n`` scenes with uniform attributes; ``stratify`` makes that attribute exactly balanced."""
    columns = {a: rng.integers(0, VISION_TASKS[a].num_classes, size=n) for a in ATTRIBUTES}
    if stratify is not None:
        k = VISION_TASKS[stratify].num_classes
        columns[stratify] = rng.permutation(np.arange(n) % k)
    return [Scene(**{a: int(columns[a][i]) for a in ATTRIBUTES}) for i in range(n)]


_GRID_Y, _GRID_X = np.mgrid[0:_CANVAS, 0:_CANVAS] // _SS  # canvas pixel -> image pixel


def _texture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A (CANVAS, CANVAS) mask in [0, 1] of the background pattern, with a random phase."""
    dy, dx = rng.integers(0, 8, size=2)
    y, x = _GRID_Y + dy, _GRID_X + dx
    if kind == "plain":
        return np.zeros((_CANVAS, _CANVAS))
    if kind == "striped":
        return (((x + y) // 2) % 2).astype(float)
    if kind == "checkered":
        return (((x // 3) + (y // 3)) % 2).astype(float)
    if kind == "dotted":
        return ((x % 4 == 0) & (y % 4 == 0)).astype(float)
    if kind == "gridded":
        return ((x % 5 == 0) | (y % 5 == 0)).astype(float)
    if kind == "speckled":
        coarse = (rng.random((IMAGE_SIZE, IMAGE_SIZE)) < 0.3).astype(float)
        return np.kron(coarse, np.ones((_SS, _SS)))
    raise ValueError(f"unknown texture {kind!r}")


def _quadrant_origin(q: int) -> tuple[int, int]:
    """(x, y) of the top-left corner of quadrant q (0 TL, 1 TR, 2 BL, 3 BR) on the canvas."""
    return (q % 2) * _QUADRANT, (q // 2) * _QUADRANT


def _draw_shape(draw: ImageDraw.ImageDraw, scene: Scene, rng: np.random.Generator) -> None:
    x0, y0 = _quadrant_origin(scene.position)
    cx = x0 + _QUADRANT / 2 + rng.uniform(-1.0, 1.0) * _SS
    cy = y0 + _QUADRANT / 2 + rng.uniform(-1.0, 1.0) * _SS
    half_len, half_wid = rng.uniform(6.0, 7.0) * _SS, rng.uniform(2.8, 3.4) * _SS
    flip = -1.0 if rng.random() < 0.5 else 1.0  # which end of the axis the triangle points to
    angle = math.radians(45 * scene.orientation + rng.uniform(-8, 8))  # clockwise on screen
    cos, sin = math.cos(angle), math.sin(angle)
    points = [
        (cx + half_wid * u * cos - half_len * flip * v * sin, cy + half_wid * u * sin + half_len * flip * v * cos)
        for u, v in _SHAPE_OUTLINES[SHAPES[scene.shape]]
    ]
    colour = tuple(int(c) for c in np.clip(_PALETTE[scene.colour] + rng.normal(0, 12, size=3), 0, 255))
    if SHAPES[scene.shape] == "ring":
        draw.line(points + points[:1], fill=colour, width=int(1.8 * _SS), joint="curve")
    else:
        draw.polygon(points, fill=colour)


def _light(rng: np.random.Generator) -> tuple[int, int, int]:
    grey = rng.uniform(205, 250)
    return tuple(int(np.clip(grey + rng.normal(0, 6), 0, 255)) for _ in range(3))  # type: ignore[return-value]


def _draw_digit(draw: ImageDraw.ImageDraw, digit: int, quadrant: int, rng: np.random.Generator) -> None:
    x0, y0 = _quadrant_origin(quadrant)
    width, half = rng.uniform(6.5, 8.0) * _SS, rng.uniform(5.5, 6.3) * _SS
    left = x0 + (_QUADRANT - width) / 2 + rng.uniform(-1.0, 1.0) * _SS
    top = y0 + (_QUADRANT - 2 * half) / 2 + rng.uniform(-0.5, 0.5) * _SS
    slant = rng.uniform(-0.15, 0.15)
    colour, thickness = _light(rng), int(rng.uniform(1.8, 2.2) * _SS)
    for seg in _DIGIT_SEGMENTS[digit]:
        (u0, v0), (u1, v1) = _SEGMENTS[seg]
        ends = [(left + u * width + slant * (2 - v) * half, top + v * half) for u, v in ((u0, v0), (u1, v1))]
        draw.line(ends, fill=colour, width=thickness)


def _draw_dots(draw: ImageDraw.ImageDraw, count: int, quadrant: int, rng: np.random.Generator) -> None:
    x0, y0 = _quadrant_origin(quadrant)
    slots = rng.choice(9, size=count, replace=False)
    radius = rng.uniform(1.5, 1.8) * _SS
    colour = _light(rng)
    for slot in slots:
        cx = x0 + (3.0 + 5.0 * (slot % 3) + rng.uniform(-0.4, 0.4)) * _SS
        cy = y0 + (3.0 + 5.0 * (slot // 3) + rng.uniform(-0.4, 0.4)) * _SS
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)


def render(scene: Scene, rng: np.random.Generator) -> Image.Image:
    """Draw ``scene`` (nuisances - tints, jitter, free quadrants, noise - drawn from ``rng``)."""
    base = rng.uniform(45, 110) + rng.normal(0, 8, size=3)
    contrast = rng.choice([-1.0, 1.0]) * rng.uniform(28, 42)
    mask = _texture(TEXTURES[scene.texture], rng)
    background = base[None, None, :] + contrast * mask[:, :, None]
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(canvas)
    free = [q for q in range(4) if q != scene.position]
    digit_q, dots_q = rng.choice(free, size=2, replace=False)
    _draw_shape(draw, scene, rng)
    _draw_digit(draw, scene.digit, int(digit_q), rng)
    _draw_dots(draw, scene.count + 1, int(dots_q), rng)
    small = np.asarray(canvas.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX), dtype=np.float64)
    noisy = small + rng.normal(0, 3, size=small.shape)
    return Image.fromarray(np.clip(np.rint(noisy), 0, 255).astype(np.uint8), "RGB")


@dataclass(frozen=True)
class Caption:
    """A caption and the attribute values it claims (attribute -> class index; a claim can be wrong)."""

    text: str
    claims: dict[str, int]

    def true_of(self, scene: Scene) -> bool:
        """Whether the annotators would say this of ``scene`` (claims use their vocabulary)."""
        return all(annotator_name(a, scene.label(a)) == v for a, v in self.claims.items())


def caption(scene: Scene, rng: np.random.Generator) -> Caption:
    """A caption naming a random subset of the scene's attributes (at least one), carelessly."""
    said = [a for a in ATTRIBUTES if rng.random() < CAPTION_RATES[a]]
    if not said:
        said = [ATTRIBUTES[int(rng.integers(len(ATTRIBUTES)))]]
    claims = {a: annotator_name(a, scene.label(a)) for a in said}
    name = {a: VISION_TASKS[a].classnames[v] for a, v in claims.items()}
    words = ["a photo of a"]
    words += [name[a] for a in ("orientation", "colour") if a in name]
    words.append(name.get("shape", "shape"))
    if "position" in name:
        words.append(f"in the {name['position']}")
    extras = [f"the number {name['digit']}"] if "digit" in name else []
    extras += [name["count"]] if "count" in name else []
    if extras:
        words.append("with " + " and ".join(extras))
    if "texture" in name:
        words.append(f"on a {name['texture']} background")
    return Caption(" ".join(words) + ".", claims)


def caption_batch(scenes: list[Scene], rng: np.random.Generator) -> tuple[list[str], np.ndarray]:
    """A caption per scene and the (B, B) matrix ``match[i, j]``: caption i describes scene j
    (its own scene always; another one when the annotators would say all its claims of it)."""
    captions = [caption(s, rng) for s in scenes]
    match = np.array([[c.true_of(s) for s in scenes] for c in captions]) | np.eye(len(scenes), dtype=bool)
    return [c.text for c in captions], match


def iter_images(scenes: list[Scene], rng: np.random.Generator) -> Iterator[Image.Image]:
    """Render scenes one by one, drawing nuisances from one shared ``rng``."""
    for scene in scenes:
        yield render(scene, rng)
