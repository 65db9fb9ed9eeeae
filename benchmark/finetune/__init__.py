"""Fine-tuning that produces model pools: full, LoRA and L-LoRA.

``finetune`` trains one task's model in the format the pools load; ``Recipe`` / ``LoraSpec``
describe how, ``FinetuneOptions`` where and how fast.
"""

from fusionbench.finetune.loop import FinetuneOptions, FinetuneResult, finetune
from fusionbench.config.recipe import LoraSpec, Recipe, load_recipe

__all__ = ["FinetuneOptions", "FinetuneResult", "LoraSpec", "Recipe", "finetune", "load_recipe"]
