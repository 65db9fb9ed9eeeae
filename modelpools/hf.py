"""The transformers pools (CLIP, Flan-T5): a base model and its full / LoRA / L-LoRA fine-tuned versions.

The config and its checks are ``transformers_config``; what the ParamDict is in each mode, and how
checkpoints are read and checked, is ``full_weights`` (full) and ``adapter_weights`` (lora, llora).
``model(params)`` reuses one resident dense module and writes the parameters, or the folded adapter
updates, into it, so merged (L-)LoRA models run at the base model's speed (exactly, for L-LoRA).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional

import torch
from torch import nn

from fusionbench.api.errors import CheckpointError, ConfigError, choices_text
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.models.adapters import save_adapter
from fusionbench.models.checkpoints import Entry, Resolved, entry_id, read_json, resolve_entries
from fusionbench.modelpools.adapter_weights import DELTA_SUFFIX, AdapterWeights
from fusionbench.modelpools.full_weights import FullWeights
from fusionbench.modelpools.saving import adapter_save_format
from fusionbench.modelpools.streamed import StreamedFullSave
from fusionbench.modelpools.transformers_config import DTYPES, TransformersPoolConfig, check_config

_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


class TransformersModelPool(FullWeights, AdapterWeights, StreamedFullSave, ModelPool):
    """A base model and its full / LoRA / L-LoRA fine-tuned versions (see module docstring).

    ``base()`` and ``finetuned()`` return new ParamDicts whose float32 CPU tensors are shared
    with the pool's caches: treat them as read-only (ParamDict arithmetic never mutates).
    """

    Config = TransformersPoolConfig
    offline_hint: ClassVar[str] = ""  # how to run offline, appended to hub-unreachable errors ({mode} filled in)

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        check_config(config)
        entries = [Entry("modelpool.base", config.base, "base model")] + [
            Entry(f"modelpool.models.{t}", path, f"checkpoint of task {t!r}") for t, path in config.models.items()
        ]
        located = resolve_entries(entries, _HUB_PATTERNS, self.offline_hint.format(mode=config.mode))
        self._base_loc: Resolved = located["modelpool.base"]
        self._locs: dict[str, Resolved] = {t: located[f"modelpool.models.{t}"] for t in config.models}
        self._dtype = DTYPES[config.dtype]
        self._resident = self._load_base(self._base_loc.path)
        self._resident.requires_grad_(False)
        self._hint = f"every model of pool {config.name!r} must be fine-tuned from its base {config.base!r}"
        self._cache: dict[str, ParamDict] = {}
        self._identity: Optional[dict[str, Any]] = None
        self._wrapped: Any = None
        self._weight_names: Optional[dict[str, str]] = None  # adapted layer -> its weight's name in the resident module
        if config.mode == "full":
            self._init_full()
        else:
            self._init_adapters()

    # ------------------------------------------------------------- family hooks
    @abstractmethod
    def _load_base(self, path: Path) -> nn.Module:
        """Load the pretrained model from ``path``; return the resident module (on self.device, eval mode)."""

    @abstractmethod
    def _wrap(self) -> Any:
        """The evaluation object around the resident module (built once, on first ``model`` call)."""

    @abstractmethod
    def _save_dense(self, directory: Path) -> None:
        """``save_pretrained`` the resident model (as its family loads it) with the base's processor / tokenizer."""

    # -------------------------------------------------------------- contract
    def all_tasks(self) -> list[str]:
        return list(self.config.models)

    @property
    def mode(self) -> str:
        return str(self.config.mode)

    def _from_pretrained(
        self, path: Path, model_type: str, label: tuple[str, str], example: str, needs: str, load: Callable[[], tuple[Any, dict]]
    ) -> Any:
        """``load()`` the base saved at ``path`` after checking its ``model_type``; every failure is one CheckpointError.

        ``label`` names the family and its directories in messages (e.g. ("CLIP", "CLIPModel")); ``load``
        returns what it loaded and transformers' loading info of the model.
        """
        found = read_json(path / "config.json", f"base model {self.config.base!r}").get("model_type")
        if found != model_type:
            raise CheckpointError(
                f"base model {self.config.base!r} is a {found!r} model, not a {label[0]} model (model_type {model_type!r}); "
                f"set modelpool.base to a {label[1]} directory or hub id such as {example}"
            )
        try:
            loaded, info = load()
        except (OSError, ValueError) as exc:
            raise CheckpointError(
                f"base model {self.config.base!r} ({path}) is incomplete or unreadable ({str(exc).splitlines()[0]}); it needs "
                f"{needs} as saved by save_pretrained"
            ) from None
        if info["missing_keys"]:
            raise CheckpointError(
                f"base model {self.config.base!r} lacks weights for {sorted(info['missing_keys'])[0]}; re-download or re-save it"
            )
        return loaded

    def base(self) -> ParamDict:
        return ParamDict(self._base)

    def finetuned(self, task: str) -> ParamDict:
        if task not in self._locs:
            raise ConfigError(f"pool {self.config.name!r} has no task {task!r}; valid tasks: {choices_text(self.all_tasks())}")
        if task in self._cache:
            return ParamDict(self._cache[task])
        params = self._read_full(task) if self.mode == "full" else self._adapter_params(self._adapters[task].phi)
        if self.mode != "full" or self.config.cache_finetuned:
            self._cache[task] = params
        return ParamDict(params)

    def model(self, params: ParamDict) -> Any:
        self._base.check_compatible(params)
        with torch.no_grad():
            if self.mode == "full":
                for name, p in self._resident.named_parameters():
                    p.copy_(params[name])
            else:
                for layer, weight in self._targets.items():
                    weight.copy_(self._W0[layer] + self._fold(layer, params))
        if self._wrapped is None:
            self._wrapped = self._wrap()
        return self._wrapped

    def module_parameters(self, params: ParamDict) -> Mapping[str, torch.Tensor]:
        """full: ``params``; lora / llora: each adapted Linear's weight ``W0 + fold(params)`` (differentiable in ``params``),
        by the resident module's names; the resident module's other parameters are the base's and not returned."""
        if self.mode == "full":
            return params
        names = self._adapted_weight_names()
        return {names[layer]: (self._W0[layer] + self._fold(layer, params)).to(weight.dtype) for layer, weight in self._targets.items()}

    def dense_weights(self) -> dict[str, str]:
        """full: every parameter is its own; merge_space=delta: each layer's update is added to that layer's weight."""
        if self.mode == "full" or self.config.merge_space != "delta" or self._fan_in_fan_out:
            return super().dense_weights()
        return {layer + DELTA_SUFFIX: name for layer, name in self._adapted_weight_names().items()}

    def _adapted_weight_names(self) -> dict[str, str]:
        """Adapted layer -> its weight's name in the resident module."""
        if self._weight_names is None:
            names = {id(p): name for name, p in self._resident.named_parameters()}
            self._weight_names = {layer: names[id(weight)] for layer, weight in self._targets.items()}
        return self._weight_names

    def save_format(self, requested: str) -> str:
        """full: dense; lora and llora: see ``fusionbench.modelpools.saving.adapter_save_format``."""
        if requested == "adapter" and self.mode == "full":
            return super().save_format(requested)
        return adapter_save_format(self.config, requested)

    def save(self, params: ParamDict, directory: Path, save_format: str) -> None:
        """The folded model via ``save_pretrained`` (dense), or a peft adapter directory holding ``params`` (adapter;
        L-LoRA adds its shared init phi_0, so ``mode=llora`` pools read it back)."""
        if save_format == "adapter":
            llora = self.mode == "llora"
            adapter_config = next(iter(self._adapters.values())).config
            save_adapter(directory, adapter_config, params, self._phi0 if llora else None, "llora" if llora else "lora")
            return
        self.model(params)
        self._save_dense(directory)

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            ident: dict[str, Any] = {
                "type": self.name,
                "mode": self.mode,
                "base": entry_id(self._base_loc),
                "models": {t: entry_id(loc) for t, loc in self._locs.items()},
                "dtype": self.config.dtype,
            }
            if self.mode == "lora" or self.config.merge_space == "delta":  # llora's adapter-space identity predates the field
                ident["merge_space"] = self.config.merge_space
                ident["init"] = "stored" if self._init_stored else f"seed:{self.config.init_seed}"
            self._identity = ident
        return dict(self._identity)

    def _where(self, task: str) -> str:
        """How messages name ``task``'s checkpoint."""
        return f"checkpoint of task {task!r} ({self._locs[task].path})"
