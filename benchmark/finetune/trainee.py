"""The module a fine-tune trains, in each mode, built the way the model pools build it and saved in their formats.

The base model is loaded by the model pool its family names (``ModelFamily.modelpool``), so
fine-tuning sees exactly the module, image processor, tokenizer and zero-shot head that
evaluation sees. The modes (Tang et al., "Parameter Efficient Multi-Task Model Fusion with
Partial Linearization", ICLR 2024, sec. 4 and Fig. 3):

* ``full``: every parameter of the module the pool's adapters wrap (the CLIP vision
  transformer, the whole T5). CLIP's text tower is frozen and serves as the zero-shot head;
  its visual projection stays frozen too, as in the published checkpoints.
* ``lora``: peft LoRA on ``recipe.lora.targets``, initialised after
  ``torch.manual_seed(recipe.init_seed)``, so every task starts from one shared phi_0.
* ``llora``: the same adapters, linearised in closed form right after initialisation
  (``linearize_lora_``), so phi_0 is the init.
* ``linearized``: the whole module linearised around theta_0 with ``torch.func.jvp``
  (``LinearizedModel``; Ortiz-Jimenez et al., NeurIPS 2023; the paper's Fig. 3b).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file
from torch import nn
from transformers.modeling_outputs import Seq2SeqLMOutput

from fusionbench.api.errors import CheckpointError
from fusionbench.api.families import ModelFamily, ZeroShotImageModel
from fusionbench.api.modelpool import MODES, ModelPool
from fusionbench.api.plugins import FAMILIES, MODELPOOLS
from fusionbench.models.adapters import add_lora, save_adapter, save_llora_model
from fusionbench.models.checkpoints import Entry, read_json, resolve_entries
from fusionbench.models.linearize import LinearizedModel, linearize_lora_
from fusionbench.models.streaming import save_tensors

FINETUNE_MODES = (*MODES, "linearized")  # the pool modes, and full-model linearisation (paper Fig. 3b)
LINEARIZED_WEIGHTS = "linearized_model.safetensors"
LINEARIZED_INIT = "linearized_init.safetensors"
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


class LinearizedSeq2SeqLM(nn.Module):
    """A seq2seq LM whose logits are linearised in its parameters by jvp, with the seq2seq cross-entropy on them.

    (Linearising the model's own ``loss`` output would linearise the loss, not the logits.)
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.linearized = LinearizedModel(model)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> Seq2SeqLMOutput:
        decoder_input_ids = self.linearized.model.prepare_decoder_input_ids_from_labels(labels=labels)
        out = self.linearized(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids, use_cache=False)
        loss = F.cross_entropy(out.logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
        return Seq2SeqLMOutput(loss=loss, logits=out.logits)


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
    linearized: Optional[LinearizedModel] = None  # linearized

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
    is_clip = isinstance(evaluated, ZeroShotImageModel)
    module = evaluated.vision if is_clip else evaluated.module
    root: Any = module.get_submodule(pool.adapter_prefix.rstrip("."))  # what the pool's adapters wrap: a PreTrainedModel
    if mode in ("lora", "llora"):
        peft_model = _add_lora(root, recipe, model)
        phi0 = {k: v.detach().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
        if mode == "llora":
            linearize_lora_(peft_model)
        return Trainee(mode, evaluated, module, peft_model=peft_model, phi0=phi0)
    root.requires_grad_(True)
    if mode == "full":
        return Trainee(mode, evaluated, module)
    root.set_attn_implementation("eager")  # scaled_dot_product_attention has no forward-mode AD
    if is_clip:
        linearized = LinearizedModel(module)
        evaluated = replace(evaluated, vision=linearized)
    else:
        wrapper = LinearizedSeq2SeqLM(module)
        linearized = wrapper.linearized
        evaluated = replace(evaluated, module=wrapper)
    return Trainee(mode, evaluated, module, linearized=linearized)


def save_trainee(trainee: Trainee, path: Path, pool: ModelPool) -> None:
    """Write the fine-tuned model into the folder ``path`` in the format its model pool loads for ``mode``."""
    if trainee.mode == "lora":
        from peft.utils import get_peft_model_state_dict

        assert trainee.peft_model is not None
        save_adapter(path, trainee.peft_model.peft_config["default"], get_peft_model_state_dict(trainee.peft_model), trainee.phi0, kind="lora")
    elif trainee.mode == "llora":
        assert trainee.peft_model is not None
        save_llora_model(trainee.peft_model, path)
    elif trainee.mode == "linearized":
        assert trainee.linearized is not None
        save_linearized(trainee.module, trainee.linearized, path, pool)
    else:
        root: Any = trainee.module.get_submodule(pool.adapter_prefix.rstrip("."))  # a transformers PreTrainedModel
        root.save_pretrained(path)
        if not isinstance(trainee.evaluated, ZeroShotImageModel):
            trainee.evaluated.tokenizer.save_pretrained(path)


# ------------------------------------------------------------------ full-model linearisation format
def save_linearized(module: nn.Module, linearized: LinearizedModel, path: Path, pool: ModelPool) -> None:
    """theta and theta_0 of the trained parameters, under the full-mode pool's names, plus the model's config.json.

    The model is ``f(x; theta_0) + J_theta f(x; theta_0) (theta - theta_0)``; parameters not stored are the base's.
    """
    names = [n for n, p in module.named_parameters() if p.requires_grad]  # LinearizedModel's params0 follow this order
    meta = {"format": "pt", "fusionbench.linearized": "full", "fusionbench.format": "1"}
    theta = {n: p.detach().cpu().contiguous() for n, p in module.named_parameters() if p.requires_grad}
    theta0 = {n: p0.detach().cpu().contiguous() for n, p0 in zip(names, linearized.params0)}
    save_tensors(theta, path / LINEARIZED_WEIGHTS, meta)
    save_tensors(theta0, path / LINEARIZED_INIT, meta)
    root: Any = module.get_submodule(pool.adapter_prefix.rstrip("."))  # a transformers PreTrainedModel
    root.config.save_pretrained(path)


def read_linearized(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(theta, theta_0) of a checkpoint written by ``fusionbench finetune mode=linearized``."""
    files = (path / LINEARIZED_WEIGHTS, path / LINEARIZED_INIT)
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise CheckpointError(f"{str(path)!r} is not a linearized fine-tune: {missing[0]} is missing; write one with fusionbench finetune mode=linearized")
    try:
        with safe_open(str(files[0]), framework="pt") as handle:
            kind = (handle.metadata() or {}).get("fusionbench.linearized")
        theta, theta0 = load_file(str(files[0])), load_file(str(files[1]))
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"linearized fine-tune {str(path)!r} is unreadable ({exc}); re-run the fine-tune") from None
    if kind != "full" or theta.keys() != theta0.keys():
        raise CheckpointError(f"{str(path)!r} is not a consistent linearized fine-tune (theta and theta_0 must hold the same tensors); re-run the fine-tune")
    return theta, theta0
