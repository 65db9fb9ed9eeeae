"""The cost profile ``fusionbench profile`` writes (schema ``fusionbench.profile/1``), as a dataclass.

``Profile.to_dict`` is the ``profile.json`` the JSON Schema ``fusionbench/schemas/profile.schema.json``
describes; ``Profile.from_dict`` reads one back (profiles written before the one recipe type, with
flat ``lora_r`` keys in ``settings.recipe``, included: the recipe is kept as written).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Mapping, Optional, Union

from fusionbench.engine.results import PROFILE, from_fields

Figures = dict[str, dict[str, float]]  # paradigm -> figure -> value


@dataclass(frozen=True)
class ProfileSettings:
    """What was measured and how: paradigms, batch, timed and warm-up steps, seed, threads, the recipe, the methods."""

    paradigms: list[str]
    batch_size: int
    steps: int
    warmup: int
    seed: int
    threads: Union[int, str]  # "torch default" for 0
    recipe: dict[str, Any]  # the setup measured: preset, the Recipe's fields, the T5 sequence lengths
    its: str  # how it/s is measured
    peak_memory: str  # how peak memory is measured
    paper_batch_size: Optional[int]


@dataclass(frozen=True)
class PaperFigures:
    """The paper's published figures (tables 3 and 4) under our figure names, and their ratios to full fine-tuning."""

    source: dict[str, Optional[str]]  # table3_key / table4_key: the anchors' keys the figures come from
    table3: Figures
    table4: Figures
    table3_ratio_to_full: Figures
    table4_ratio_to_full: Figures


@dataclass(frozen=True)
class ProfileProvenance:
    """Package versions, git revision and date of a profile."""

    packages: dict[str, str]
    git_revision: Optional[str]
    date: str


@dataclass(frozen=True)
class Profile:
    """A cost profile (L-LoRA paper, tables 3 and 4): our figures per paradigm beside the paper's, and how they were measured."""

    SCHEMA: ClassVar[str] = PROFILE

    model: str
    device: dict[str, Any]  # type, name, torch, cpu_count, platform (cuda, tf32_matmul on a GPU)
    settings: ProfileSettings
    rss_floor_bytes: int  # peak RSS of a process that only imports torch, transformers and peft
    ours: Figures
    ours_ratio_to_full: Figures
    paper: PaperFigures
    measurements: dict[str, dict[str, Any]]  # paradigm -> checkpoint_bytes and each phase's raw measurement
    provenance: ProfileProvenance
    output: Optional[str] = None  # the file it was written to (not part of profile.json)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], output: Optional[str] = None) -> Profile:
        """The profile a ``profile.json`` holds."""
        return cls(
            model=data["model"],
            device=dict(data["device"]),
            settings=from_fields(ProfileSettings, data["settings"]),
            rss_floor_bytes=data["rss_floor_bytes"],
            ours=data["ours"],
            ours_ratio_to_full=data["ours_ratio_to_full"],
            paper=from_fields(PaperFigures, data["paper"]),
            measurements=data["measurements"],
            provenance=from_fields(ProfileProvenance, data["provenance"]),
            output=output,
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``profile.json`` (no ``output``)."""
        data = asdict(self)
        del data["output"]
        return {"schema": self.SCHEMA, **data}
