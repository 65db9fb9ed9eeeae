"""Shared machinery of the transformers pools (CLIP, Flan-T5) in their three modes.

* ``full``: the ParamDict is every floating parameter of the fine-tuned module; task
  vectors are theta_t - theta_0 (Ilharco et al., ICLR 2023).
* ``lora``: the ParamDict is the adapters' lora_A / lora_B (peft key layout); task vectors
  are phi_t - phi_0 (L-LoRA paper, appendix A). With ``merge_space=delta`` it is instead the
  per-layer dense update ``s B A`` (base ``s B0 A0``).
* ``llora``: as ``lora``, but the model is the linearised one,
  ``W0 + s (B0 A + B A0 - B0 A0)`` (L-LoRA paper, sec. 4), with phi_0 stored in every checkpoint;
  ``merge_space=delta`` makes the ParamDict that per-layer update, exact since the model is linear in it.

``model(params)`` reuses one resident dense module and writes folded weights into it, so
merged (L-)LoRA models run at the base model's speed (exactly, for L-LoRA).
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Optional

import torch
from omegaconf import MISSING, OmegaConf
from torch import nn

from fusionbench.api.errors import CheckpointError, ConfigError, ParamMismatchError, choices_text
from fusionbench.api.modelpool import MODES, ModelPool, ModelPoolConfig
from fusionbench.api.params import ParamDict
from fusionbench.models.adapters import PEFT_PREFIX, AdapterCheckpoint, generate_init, read_adapter, save_adapter
from fusionbench.models.checkpoints import (
    Entry,
    Resolved,
    entry_id,
    load_state_dict,
    looks_like_path,
    match_state_keys,
    read_json,
    resolve_entries,
    tensor_shapes,
)
from fusionbench.models.linearize import llora_delta, lora_delta
from fusionbench.modelpools.saving import adapter_save_format
from fusionbench.modelpools.streamed import StreamedFullSave

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
MERGE_SPACES = ("adapter", "delta")
DELTA_SUFFIX = ".delta_weight"  # merge_space=delta keys: "<peft layer path>.delta_weight"
_HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


@dataclass
class TransformersPoolConfig(ModelPoolConfig):
    """Config of a transformers pool; every model entry is a hub id or a local path."""

    mode: str = "full"  # full | lora | llora
    base: str = MISSING  # the pretrained model: hub id or local save_pretrained directory
    models: dict[str, str] = field(default_factory=dict)  # task -> fine-tuned checkpoint / adapter (hub id or local path)
    merge_space: str = "adapter"  # lora, llora: adapter (lora_A, lora_B) | delta (per-layer dense update: s B A; llora s (B0 A + B A0 - B0 A0))
    init_seed: int = 42  # lora only: seed regenerating phi_0 when the adapters do not store it
    variant: str = ""  # free text the shipped configs interpolate into hub names (e.g. clip-vit-base-patch32)
    task_set: str = ""  # named task set (ta8 | tall14 | tall20 | glue8) the shipped configs generate `models` from
    checkpoints: dict[str, str] = field(default_factory=dict)  # mode -> checkpoint pattern ({task}) the shipped configs generate `models` from
    dtype: str = "float32"  # resident model dtype: float32 | bfloat16 | float16 (ParamDicts are float32)
    cache_finetuned: bool = True  # keep loaded fine-tuned parameters in memory (full mode)


class TransformersModelPool(StreamedFullSave, ModelPool):
    """A base model and its full / LoRA / L-LoRA fine-tuned versions (see module docstring).

    ``base()`` and ``finetuned()`` return new ParamDicts whose float32 CPU tensors are shared
    with the pool's caches: treat them as read-only (ParamDict arithmetic never mutates).
    """

    Config = TransformersPoolConfig
    offline_hint: ClassVar[str] = ""  # how to run offline, appended to hub-unreachable errors ({mode} filled in)

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        self._check_config()
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

    @abstractmethod
    def _arch_signature(self, path: Path) -> Optional[dict[str, Any]]:
        """Architecture fields of the model saved at ``path`` (None when it has no config.json)."""

    def _full_mapping(self, found: dict[str, tuple[int, ...]], where: str) -> dict[str, str]:
        """Map resident parameter names to the checkpoint keys holding them (tied weights via aliases)."""
        return match_state_keys(
            {n: tuple(t.shape) for n, t in self._base.items()}, found, where, self._hint, self._aliases,
            ignore={n for n, _ in self._resident.named_buffers()},
        )

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
            save_adapter(directory, next(iter(self._adapters.values())).config, params, self._phi0 if llora else None, "llora" if llora else "lora")
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

    # ---------------------------------------------------------------- checks
    def _check_config(self) -> None:
        c = self.config
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

    def _where(self, task: str) -> str:
        return f"checkpoint of task {task!r} ({self._locs[task].path})"

    def _check_arch(self, task: str, ours: Optional[dict[str, Any]]) -> None:
        theirs = self._arch_signature(self._locs[task].path)
        if theirs is None or ours is None:
            return
        diff = [k for k in ours if k in theirs and theirs[k] != ours[k]]
        if diff:
            k = diff[0]
            raise CheckpointError(
                f"{self._where(task)} is built on another base model ({k}={theirs[k]!r}, base has {ours[k]!r}); "
                f"mixed base models in one pool: {self._hint}"
            )

    # ------------------------------------------------------------- full mode
    def _init_full(self) -> None:
        self._base = ParamDict(
            {n: p.detach().float() if p.is_meta else p.detach().float().cpu().clone() for n, p in self._resident.named_parameters() if p.is_floating_point()}
        )
        groups: dict[int, list[str]] = {}
        for n, p in self._resident.named_parameters(remove_duplicate=False):
            groups.setdefault(id(p), []).append(n)
        self._aliases = {names[0]: names[1:] for names in groups.values() if len(names) > 1}
        ours = self._arch_signature(self._base_loc.path)
        for task, loc in self._locs.items():
            self._check_arch(task, ours)
            shapes = tensor_shapes(loc.path)
            if shapes is not None:  # safetensors: validate names and shapes now, from the header only
                self._full_mapping(shapes, self._where(task))
            else:  # a torch pickle: load it now (refused unless weights-only) so bad files fail before any work
                params = self._read_full(task)
                if self.config.cache_finetuned:
                    self._cache[task] = params

    def _read_full(self, task: str) -> ParamDict:
        state = load_state_dict(self._locs[task].path)
        mapping = self._full_mapping({k: tuple(v.shape) for k, v in state.items()}, self._where(task))
        return ParamDict({n: state[mapping[n]].float() if n in mapping else base for n, base in self._base.items()})

    # ---------------------------------------------------------- adapter modes
    def _init_adapters(self) -> None:
        adapters = {t: read_adapter(loc.path, self._where(t)) for t, loc in self._locs.items()}
        self._check_kinds(adapters)
        first_task, first = next(iter(adapters.items()))
        self._check_consistent(first_task, first, adapters)
        self._scaling = first.scaling
        self._fan_in_fan_out = bool(first.config.get("fan_in_fan_out", False))
        self._targets = self._resolve_layers(first_task, first)
        self._W0 = {layer: w.detach().float().clone() for layer, w in self._targets.items()}
        self._adapters = adapters
        phi0 = self._shared_init(adapters)
        self._phi0 = ParamDict({k: v.float().to(self.device) for k, v in phi0.items()})
        self._base = self._adapter_params(phi0)

    def _check_kinds(self, adapters: dict[str, AdapterCheckpoint]) -> None:
        for task, ckpt in adapters.items():
            if self.mode == "llora" and ckpt.kind != "llora":
                raise CheckpointError(
                    f"{self._where(task)} is a plain LoRA adapter without its L-LoRA init phi_0; an L-LoRA checkpoint "
                    f"stores phi_0 (FusionBench's linearized_adapter_model.safetensors, or ours: adapter_init.safetensors "
                    f"with fusionbench.adapter=llora); re-save it with save_adapter(..., kind='llora') or use mode=lora"
                )
            if self.mode == "lora" and ckpt.kind == "llora":
                raise CheckpointError(f"{self._where(task)} is an L-LoRA adapter; load it with modelpool.mode=llora")

    def _check_consistent(self, first_task: str, first: AdapterCheckpoint, adapters: dict[str, AdapterCheckpoint]) -> None:
        for task, ckpt in adapters.items():
            for label, value, ref in (
                ("r", ckpt.rank, first.rank),
                ("lora_alpha", ckpt.alpha, first.alpha),
                ("use_rslora", bool(ckpt.config.get("use_rslora")), bool(first.config.get("use_rslora"))),
                ("target_modules", ckpt.target_modules, first.target_modules),
            ):
                if value != ref:
                    raise CheckpointError(
                        f"LoRA adapters of one pool must share r, lora_alpha and target modules: task {task!r} has "
                        f"{label}={value!r} but task {first_task!r} has {label}={ref!r}; use adapters trained with one LoRA config"
                    )
            if ckpt.phi.keys() != first.phi.keys():
                odd = sorted(ckpt.phi.keys() ^ first.phi.keys())[0]
                raise CheckpointError(
                    f"LoRA adapters of one pool must adapt the same layers: tasks {task!r} and {first_task!r} differ at {odd}; "
                    f"use adapters trained with one LoRA config"
                )
            if ckpt.base_model and first.base_model and ckpt.base_model != first.base_model:
                raise CheckpointError(
                    f"mixed base models in one pool: task {task!r} was fine-tuned from {ckpt.base_model!r}, task "
                    f"{first_task!r} from {first.base_model!r}; {self._hint}"
                )
            base_hub = self._base_loc.hub_id
            if ckpt.base_model and base_hub and not looks_like_path(ckpt.base_model) and ckpt.base_model != base_hub:
                raise CheckpointError(
                    f"mixed base models in one pool: task {task!r} was fine-tuned from {ckpt.base_model!r}, but the "
                    f"pool's base is {base_hub!r}; {self._hint}"
                )

    def _resolve_layers(self, task: str, ckpt: AdapterCheckpoint) -> dict[str, torch.Tensor]:
        """peft layer path -> the resident Linear weight it adapts (checked against the adapter's shapes)."""
        modules = dict(self._resident.named_modules())
        targets = {}
        for layer in ckpt.layers():
            rel = layer[len(PEFT_PREFIX) :]
            module = modules.get(self.adapter_prefix + rel, modules.get(rel))
            if not isinstance(module, nn.Linear):
                raise ParamMismatchError(
                    f"{self._where(task)} adapts layer {rel!r}, which is not a Linear layer of the base model "
                    f"(first mismatching key {layer}.lora_A.weight); {self._hint}"
                )
            A, B = ckpt.phi[f"{layer}.lora_A.weight"], ckpt.phi[f"{layer}.lora_B.weight"]
            out_f, in_f = module.weight.shape
            if self._fan_in_fan_out:
                out_f, in_f = in_f, out_f
            if A.shape[1] != in_f or B.shape[0] != out_f:
                raise ParamMismatchError(
                    f"{self._where(task)}: {layer}.lora_A.weight {tuple(A.shape)} / lora_B {tuple(B.shape)} do not fit the "
                    f"base layer's weight {tuple(module.weight.shape)}; {self._hint}"
                )
            targets[layer] = module.weight
        return targets

    def _shared_init(self, adapters: dict[str, AdapterCheckpoint]) -> dict[str, torch.Tensor]:
        """phi_0: stored in the checkpoints (identical across tasks), or regenerated from init_seed (lora)."""
        stored = {t: a.phi0 for t, a in adapters.items() if a.phi0 is not None}
        self._init_stored = bool(stored)
        if stored and len(stored) != len(adapters):
            missing = next(t for t in adapters if t not in stored)
            raise CheckpointError(
                f"{self._where(missing)} stores no init phi_0 but other tasks' adapters do; store it with every adapter of the pool"
            )
        if stored:
            first_task, first = next(iter(stored.items()))
            for task, phi0 in stored.items():
                if any(not torch.equal(phi0[k], first[k]) for k in first):
                    raise CheckpointError(
                        f"the adapters of tasks {task!r} and {first_task!r} start from different inits phi_0; all tasks of a "
                        f"pool must be fine-tuned from one shared init (same seed and base)"
                    )
            return first
        first = next(iter(adapters.values()))
        root = self._resident.get_submodule(self.adapter_prefix.rstrip(".")) if self.adapter_prefix else self._resident
        phi0 = generate_init(root, first.config, self.config.init_seed)
        if phi0.keys() != first.phi.keys():
            odd = sorted(phi0.keys() ^ first.phi.keys())[0]
            raise CheckpointError(
                f"regenerating phi_0 from adapter_config.json gives other layers than the adapters hold (first: {odd}); "
                f"store the init with the adapters (save_adapter(..., phi0=...))"
            )
        return phi0

    def _adapter_params(self, phi: dict[str, torch.Tensor]) -> ParamDict:
        """A checkpoint's adapter tensors in this pool's trainable space (adapter or delta)."""
        if self.config.merge_space == "delta":
            return ParamDict(
                {
                    layer + DELTA_SUFFIX: self._delta(layer, phi[f"{layer}.lora_A.weight"].float(), phi[f"{layer}.lora_B.weight"].float())
                    for layer in self._targets
                }
            )
        return ParamDict({k: phi[k].float() for k in sorted(phi)})

    def _delta(self, layer: str, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        """Dense update of one layer for its adapter (A, B): ``s B A`` (lora) or ``s (B0 A + B A0 - B0 A0)`` (llora)."""
        if self.mode == "llora":
            A0, B0 = (self._phi0[f"{layer}.lora_{factor}.weight"].to(A.device) for factor in "AB")
            return llora_delta(A, B, A0, B0, self._scaling)
        return lora_delta(A, B, self._scaling)

    def _fold(self, layer: str, params: ParamDict) -> torch.Tensor:
        """Dense update of one layer for ``params`` (in the base weight's layout)."""
        if self.config.merge_space == "delta":
            delta = params[layer + DELTA_SUFFIX].to(self.device)
        else:
            delta = self._delta(layer, params[f"{layer}.lora_A.weight"].to(self.device), params[f"{layer}.lora_B.weight"].to(self.device))
        return delta.T if self._fan_in_fan_out else delta
