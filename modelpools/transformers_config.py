"""Config of the transformers pools (CLIP, Flan-T5) and the checks every such pool makes before loading anything."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from omegaconf import MISSING, OmegaConf

from fusionbench.api.errors import ConfigError
from fusionbench.api.modelpool import MODES, ModelPoolConfig

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MERGE_SPACES = ("adapter", "delta")


@dataclass
class TransformersPoolConfig(ModelPoolConfig):
    """Config of a transformers pool; every model entry is a hub id or a local path."""

    mode: str = "full"  # full | lora | llora
    base: str = MISSING  # the pretrained model: hub id or local save_pretrained directory
    models: dict[str, str] = field(default_factory=dict)  # task -> fine-tuned checkpoint / adapter (hub id or local path)
    # lora, llora: adapter (lora_A, lora_B) | delta (per-layer dense update: s B A; llora s (B0 A + B A0 - B0 A0))
    merge_space: str = "adapter"
    init_seed: int = 42  # lora only: seed regenerating phi_0 when the adapters do not store it
    variant: str = ""  # free text the shipped configs interpolate into hub names (e.g. clip-vit-base-patch32)
    task_set: str = ""  # named task set (ta8 | tall14 | tall20 | glue8) the shipped configs generate `models` from
    checkpoints: dict[str, str] = field(default_factory=dict)  # mode -> checkpoint pattern ({task}) the shipped configs generate `models` from
    dtype: str = "float32"  # resident model dtype: float32 | bfloat16 | float16 (ParamDicts are float32)
    cache_finetuned: bool = True  # keep loaded fine-tuned parameters in memory (full mode)


def check_config(c: Any) -> None:
    """A ConfigError for a pool config no transformers pool can load, naming the key and the valid values."""
    if OmegaConf.is_config(c) and OmegaConf.is_missing(c, "base"):
        raise ConfigError(f"pool {c.name!r} has no modelpool.base; set it to the pretrained model's hub id or local directory")
    if c.mode not in MODES:
        raise ConfigError(f"modelpool.mode={c.mode!r} is not valid; choose one of {', '.join(MODES)}")
    if c.merge_space not in MERGE_SPACES:
        raise ConfigError(f"modelpool.merge_space={c.merge_space!r} is not valid; choose one of {', '.join(MERGE_SPACES)}")
    if c.merge_space == "delta" and c.mode == "full":
        raise ConfigError(
            f"modelpool.merge_space=delta applies to mode=lora or llora (this pool has mode={c.mode}, whose parameters are "
            f"already dense); use merge_space=adapter"
        )
    if c.dtype not in DTYPES:
        raise ConfigError(f"modelpool.dtype={c.dtype!r} is not valid; choose one of {', '.join(DTYPES)}")
    if not c.models:
        raise ConfigError(f"pool {c.name!r} lists no models; add modelpool.models.<task>=<hub id or local path>")
