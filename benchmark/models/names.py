"""One canonical name per model, and the other names it goes by (accepted at the edges, never stored).

The canonical name is the hub repository's own name (``clip-vit-base-patch16``): the fine-tuned
checkpoints (``tanganke/clip-vit-base-patch16_<task>``), the pools' ``variant``, the leaderboard's
backbone and the published numbers all use it. ``clip-vit-b16`` (the architecture preset's short
name) and ``openai/clip-vit-base-patch16`` (the hub id) are aliases of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class ModelName:
    """A model: its canonical name, its hub id and its other names."""

    canonical: str
    hub_id: str
    aliases: tuple[str, ...] = ()

    def names(self) -> tuple[str, ...]:
        """Every name the model answers to: canonical, hub id, aliases."""
        return (self.canonical, self.hub_id, *self.aliases)


MODELS: tuple[ModelName, ...] = (
    ModelName("clip-vit-base-patch32", "openai/clip-vit-base-patch32", ("clip-vit-b32",)),
    ModelName("clip-vit-base-patch16", "openai/clip-vit-base-patch16", ("clip-vit-b16",)),
    ModelName("clip-vit-large-patch14", "openai/clip-vit-large-patch14", ("clip-vit-l14",)),
    ModelName("flan-t5-base", "google/flan-t5-base"),
    ModelName("flan-t5-large", "google/flan-t5-large"),
)
_BY_NAME = {name: model for model in MODELS for name in model.names()}


def known_model(name: str) -> Optional[ModelName]:
    """The model ``name`` (canonical, hub id or alias) refers to; None for any other name (a local path, another hub id)."""
    return _BY_NAME.get(name)


def canonical_name(name: str) -> str:
    """``name``'s canonical name when it is a known model's name, else ``name`` unchanged."""
    model = known_model(name)
    return model.canonical if model else name


def pretrained_checkpoint(name: str) -> str:
    """The hub id of a known model's name (``clip-vit-b16`` -> ``openai/clip-vit-base-patch16``); other names unchanged."""
    model = known_model(name)
    return model.hub_id if model else name
