"""The mini worlds as requirements: ``requires: mini_vision`` / ``mini_text`` in a config builds
the default (seed 0) world and its fine-tuned pools before the pool is constructed."""

from __future__ import annotations

from typing import ClassVar

from fusionbench.api.requirement import Requirement
from fusionbench.mini.pools import build_pools, pools_ready
from fusionbench.mini.text_data import TEXT_TASKS
from fusionbench.mini.vision_tasks import VISION_TASKS


class MiniWorld(Requirement):
    """One default mini world (``kind``) and its 21 fine-tuned models."""

    kind: ClassVar[str]

    def ready(self) -> bool:
        return pools_ready(self.kind)

    def build(self) -> None:
        build_pools(self.kind)

    def tasks(self) -> list[str]:
        return list(VISION_TASKS if self.kind == "vision" else TEXT_TASKS)


class MiniVision(MiniWorld):
    name, kind = "mini_vision", "vision"
    description = "the embedded mini vision world (seven image tasks, a tiny CLIP) and its full / LoRA / L-LoRA pools"


class MiniText(MiniWorld):
    name, kind = "mini_text", "text"
    description = "the embedded mini text world (seven GLUE-like tasks, a tiny T5) and its full / LoRA / L-LoRA pools"
