"""In which format a merge of a LoRA or L-LoRA transformers pool is saved (``save_format``)."""

from __future__ import annotations

from typing import Any

from fusionbench.api.errors import ConfigError


def adapter_save_format(config: Any, requested: str) -> str:
    """``dense`` or ``adapter`` for ``save_format=requested`` (auto, dense or adapter) of a lora / llora pool ``config``.

    auto: the merged adapter for a LoRA pool merging in adapter space, else the folded dense model (for L-LoRA
    exact, Delta W being linear in phi). An adapter cannot hold a delta-space merge (a ConfigError says what works).
    """
    if requested == "auto":
        return "adapter" if config.mode == "lora" and config.merge_space == "adapter" else "dense"
    if requested == "adapter" and config.merge_space == "delta":
        raise ConfigError(
            f"save_format=adapter is not possible for pool {config.name!r}: with modelpool.merge_space=delta a merge is a "
            f"dense update s B A per layer, which no LoRA adapter of rank r holds; use save_format=dense (the folded "
            f"model), or modelpool.merge_space=adapter to merge and save adapters"
        )
    return requested
