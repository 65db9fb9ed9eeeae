"""The module a fine-tune trains, in each mode, built the way the model pools build it and saved in their formats.

The base model is loaded by the model pool its family names (``ModelFamily.modelpool``), so
fine-tuning sees exactly the module, image processor, tokenizer and zero-shot head that
evaluation sees. The modes (Tang et al., "Parameter Efficient Multi-Task Model Fusion with
Partial Linearization", ICLR 2024, sec. 4 and Fig. 3):

* ``full``: every parameter of the module the pool's adapters wrap (the CLIP vision
  transformer, the whole T5). CLIP's text tower is frozen and serves as the zero-shot head;
  its visual projection stays frozen too, as in the published checkpoints. ``recipe.frozen``
  names parameter prefixes (in the tuned module) that stay at the base as well.
* ``lora``: peft LoRA on ``recipe.lora.targets``, initialised after
  ``torch.manual_seed(recipe.init_seed)``, so every task starts from one shared phi_0.
* ``llora``: the same adapters, linearised in closed form right after initialisation
  (``linearize_lora_``), so phi_0 is the init.

Full-model linearisation (the paper's Fig. 3b) is not a fine-tuning mode: no model pool loads
it. Its cost is measured by ``fusionbench profile`` (paradigm ``linearized``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import OmegaConf
from torch import nn

from fusionbench.api.errors import CheckpointError
from fusionbench.api.families import ModelFamily, ZeroShotImageModel
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.plugins import FAMILIES, MODELPOOLS
from fusionbench.models.adapters import add_lora, save_adapter, save_llora_model
from fusionbench.models.checkpoints import Entry, read_json, resolve_entries
from fusionbench.models.linearize import linearize_lora_

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


def model_family(model: str) -> type[ModelFamily]:
    """The registered family of ``model`` (a local path or hub id), by the model_type in its config.json."""
    hint = "fine-tune a local base, e.g. one of the embedded mini world's"
    path = resolve_entries([Entry("model", model, "model to fine-tune")], _HUB_PATTERNS, hint)["model"].path
    if not path.is_dir():
        raise CheckpointError(f"model {model!r} is a file; give a model folder (the save_pretrained layout, with config.json) or a hub id")
    model_type = read_json(path / "config.json", f"model {model!r}").get("model_type")
    if model_type not in FAMILIES:
        known = ", ".join(f"{FAMILIES.get(n).label} (model_type {n!r})" for n in FAMILIES.names())
        raise CheckpointError(f"model {model!r} is a {model_type!r} model; fusionbench finetune trains the registered model families: {known}")
    return FAMILIES.get(str(model_type))


def load_base(family: type[ModelFamily], model: str, device: str) -> ModelPool:
    """The base model, loaded by the family's model pool (same checks, offline handling, dtype, processor, tokenizer).

    It is a full-mode pool whose one "fine-tuned" model is the base itself; only its base is used.
    """
    cls = MODELPOOLS.get(family.modelpool)
    config = cls.Config(type=cls.name, name="finetune-base", mode="full", base=model, models={"base": model}, cache_finetuned=False)
    return cls(OmegaConf.structured(config), device)


@dataclass
class Trainee:
    """What one fine-tune trains.

    ``evaluated`` is what the task pool's ``loss`` and ``evaluate`` take; ``module`` is the CLIP
    vision tower or the T5, the names of trained parameters are relative to it.
    """

    mode: str
    evaluated: Any  # ZeroShotImageModel | TextToTextModel
    module: nn.Module
    peft_model: Any = None  # peft.PeftModel (lora, llora)
    phi0: Optional[dict[str, torch.Tensor]] = None  # lora: the adapters' init, peft's saved key layout

    def trained(self) -> dict[str, nn.Parameter]:
        """The parameters the optimizer updates, by name."""
        return {n: p for n, p in self.module.named_parameters() if p.requires_grad}

    def train(self, mode: bool = True) -> None:
        """Training mode (dropout, LoRA dropout) on or off for everything the task pool calls."""
        top = self.evaluated.vision if isinstance(self.evaluated, ZeroShotImageModel) else self.evaluated.module
        top.train(mode)


def _add_lora(root: nn.Module, recipe: Any, model: str) -> nn.Module:
    from peft import LoraConfig

    lora = recipe.lora
    config = LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.targets))
    peft_model = add_lora(root, config, recipe.init_seed, "recipe lora.targets", model)
    peft_model.peft_config["default"].base_model_name_or_path = model
    return peft_model


def build_trainee(pool: ModelPool, mode: str, recipe: Any, model: str) -> Trainee:
    """The base of ``pool`` made trainable in ``mode`` (see module docstring)."""
    from peft.utils import get_peft_model_state_dict

    evaluated = pool.model(pool.base())
    module = evaluated.vision if isinstance(evaluated, ZeroShotImageModel) else evaluated.module
    root: Any = module.get_submodule(pool.adapter_prefix.rstrip("."))  # what the pool's adapters wrap: a PreTrainedModel
    if mode in ("lora", "llora"):
        peft_model = _add_lora(root, recipe, model)
        phi0 = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
        if mode == "llora":
            linearize_lora_(peft_model)
        return Trainee(mode, evaluated, module, peft_model=peft_model, phi0=phi0)
    root.requires_grad_(True)
    for name, param in root.named_parameters():
        if name.startswith(tuple(recipe.frozen)):
            param.requires_grad_(False)
    return Trainee(mode, evaluated, module)


def save_trainee(trainee: Trainee, path: Path, pool: ModelPool) -> None:
    """Write the fine-tuned model into the folder ``path`` in the format its model pool loads for ``mode``."""
    if trainee.mode == "lora":
        from peft.utils import get_peft_model_state_dict

        assert trainee.peft_model is not None
        save_adapter(path, trainee.peft_model.peft_config["default"], get_peft_model_state_dict(trainee.peft_model), trainee.phi0, kind="lora")
    elif trainee.mode == "llora":
        assert trainee.peft_model is not None
        save_llora_model(trainee.peft_model, path)
    else:
        root: Any = trainee.module.get_submodule(pool.adapter_prefix.rstrip("."))  # a transformers PreTrainedModel
        root.save_pretrained(path)
        if not isinstance(trainee.evaluated, ZeroShotImageModel):
            trainee.evaluated.tokenizer.save_pretrained(path)
