"""The seven tasks of the mini vision world: names, class names, zero-shot prompts and the drawing
constants their classes are made of (outlines, petal colours, seven-segment glyphs).

    shape (6)  colour (8)  texture (6)  count (5)  position (4)  orientation (4)  digit (10)

Each task has an input domain of its own (``vision_domains``), as the datasets of the real
eight-task benchmark differ (house numbers, road signs, textures, satellite fields, ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

IMAGE_SIZE = 32


@dataclass(frozen=True)
class VisionTask:
    """One image-classification task."""

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
ORIENTATIONS = ("vertical", "rising", "horizontal", "falling")  # stripes at 0, 45, 90, 135 degrees
DIGITS = tuple(str(d) for d in range(10))

VISION_TASKS: dict[str, VisionTask] = {
    t.name: t
    for t in (
        VisionTask("shape", SHAPES, ("a photo of a {c}.", "a {c}.")),
        VisionTask("colour", COLOURS, ("a photo of a {c} flower.", "a {c} flower.")),
        VisionTask("texture", TEXTURES, ("a photo of a {c} texture.", "a {c} pattern.")),
        VisionTask("count", COUNTS, ("a photo of {c} in the sky.", "{c}.")),
        VisionTask("position", POSITIONS, ("a photo of a marker in the {c}.", "a marker in the {c}.")),
        VisionTask("orientation", ORIENTATIONS, ("a photo of {c} stripes.", "{c} stripes.")),
        VisionTask("digit", DIGITS, ("a photo of the number {c}.", "the number {c}.")),
    )
}

PALETTE = np.array(
    [(220, 40, 40), (245, 140, 20), (230, 220, 40), (40, 180, 60), (40, 205, 220), (45, 75, 225), (140, 55, 205), (245, 110, 190)],
    dtype=np.float64,
)  # petal colour of each class of ``colour``

_ELLIPSE = [(math.cos(a), math.sin(a)) for a in np.linspace(0.0, 2 * math.pi, 32, endpoint=False)]
SHAPE_OUTLINES: dict[str, list[tuple[float, float]]] = {
    "bar": [(-1.0, -1.0), (1.0, -1.0), (1.0, 1.0), (-1.0, 1.0)],
    "oval": _ELLIPSE,
    "diamond": [(0.0, -1.0), (1.0, 0.0), (0.0, 1.0), (-1.0, 0.0)],
    "ring": _ELLIPSE,  # drawn as an outline
    "bowtie": [(-1.0, -1.0), (1.0, -1.0), (0.2, 0.0), (1.0, 1.0), (-1.0, 1.0), (-0.2, 0.0)],
    "triangle": [(0.0, -1.0), (1.0, 1.0), (-1.0, 1.0)],
}  # in unit coordinates: u across, v along the long axis, both in [-1, 1]

# Seven-segment glyphs: segments a (top), b (upper right), c (lower right), d (bottom),
# e (lower left), f (upper left), g (middle), each a line in a unit box [0,1]x[0,2].
SEGMENTS = {
    "a": ((0, 0), (1, 0)),
    "b": ((1, 0), (1, 1)),
    "c": ((1, 1), (1, 2)),
    "d": ((0, 2), (1, 2)),
    "e": ((0, 1), (0, 2)),
    "f": ((0, 0), (0, 1)),
    "g": ((0, 1), (1, 1)),
}
DIGIT_SEGMENTS = ("abcdef", "bc", "abged", "abgcd", "fgbc", "afgcd", "afgedc", "abc", "abcdefg", "abcdfg")
