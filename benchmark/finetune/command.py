"""``fusionbench finetune key=value ...``: the words split into run keys, ``taskpool.*`` and recipe overrides, checked, then run."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, cast

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.config.compose import check_resolvable, parse_words, read_dotlist
from fusionbench.engine.build import resolve_device
from fusionbench.finetune.loop import FinetuneOptions, FinetuneResult, check_mode, check_options, finetune, load_taskpool
from fusionbench.config.recipe import Recipe, load_recipe, recipe_keys
from fusionbench.finetune.trainee import model_family
from fusionbench.models.names import pretrained_checkpoint


@dataclass
class FinetuneArgs(FinetuneOptions):
    """Top-level keys of ``fusionbench finetune`` (recipe keys such as steps= and lora.r= are accepted too)."""

    model: str = MISSING  # hub id, local save_pretrained directory, or an architecture preset (below)
    task: str = MISSING  # a task of the task pool; its train split is the training data
    mode: str = MISSING  # full, lora or llora (linearised LoRA)
    taskpool: Optional[str] = None  # option or YAML path (default: the model family's, below)
    recipe: Optional[str] = None  # a recipe name or YAML path (default: the model family's, below)
    output_dir: Optional[str] = None  # default $FUSIONBENCH_HOME/checkpoints/<model>_<task><suffix>


def finetune_command(words: list[str]) -> FinetuneResult:
    """``fusionbench finetune key=value ...``: split the words into run keys, ``taskpool.*`` and recipe overrides, then run."""
    arg_keys = [f.name for f in dataclasses.fields(FinetuneArgs)]
    recipe_heads = {f.name for f in dataclasses.fields(Recipe)}
    args_words: list[str] = []
    taskpool_overrides: list[str] = []
    recipe_overrides: list[str] = []
    for key, value in parse_words(words):
        head = key.split(".")[0]
        if key in arg_keys:
            args_words.append(f"{key}={value}")
        elif head == "taskpool":
            taskpool_overrides.append(f"{key.split('.', 1)[1]}={value}")
        elif head in recipe_heads:
            recipe_overrides.append(f"{key}={value}")
        else:
            valid = sorted(set(arg_keys) | set(recipe_keys()) | {"taskpool.KEY"})
            raise ConfigError(f"unknown key {key!r}.{did_you_mean(key, valid)} Valid keys: {choices_text(valid)}")
    cfg = OmegaConf.structured(FinetuneArgs)
    OmegaConf.set_struct(cfg, True)
    try:
        cfg = cast(DictConfig, OmegaConf.merge(cfg, read_dotlist(args_words)))
    except OmegaConfBaseException as exc:
        raise ConfigError(f"invalid value: {str(exc).splitlines()[0]}") from None
    missing = [k for k in ("model", "task", "mode") if OmegaConf.is_missing(cfg, k)]
    if missing:
        raise ConfigError(f"finetune needs {', '.join(f'{k}=...' for k in missing)} (e.g. model=clip-vit-b16 task=eurosat mode=llora)")
    check_resolvable(cfg, "the fine-tuning settings")
    check_mode(cfg.mode)
    check_options(FinetuneOptions(**{f.name: cfg[f.name] for f in dataclasses.fields(FinetuneOptions)}))
    model = pretrained_checkpoint(cfg.model)
    family = model_family(model)
    device = resolve_device(cfg.device)
    recipe = load_recipe(cfg.recipe or family.default_recipe, recipe_overrides)
    taskpool = load_taskpool(cfg.taskpool or family.default_taskpool, taskpool_overrides, device)
    options = FinetuneOptions(**{f.name: cfg[f.name] for f in dataclasses.fields(FinetuneOptions)})
    return finetune(model, cfg.task, cfg.mode, taskpool, recipe, cfg.output_dir, options)
