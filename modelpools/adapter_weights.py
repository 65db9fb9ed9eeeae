"""LoRA and L-LoRA modes of the transformers pools: the adapters' phi = (lora_A, lora_B) is the ParamDict.

* ``lora``: task vectors are phi_t - phi_0 (L-LoRA paper, appendix A); with ``merge_space=delta`` the
  ParamDict is instead the per-layer dense update ``s B A`` (base ``s B0 A0``).
* ``llora``: the model is the linearised one, ``W0 + s (B0 A + B A0 - B0 A0)`` (L-LoRA paper, sec. 4), with
  phi_0 stored in every checkpoint; ``merge_space=delta`` makes the ParamDict that per-layer update, exact
  since the model is linear in it.

The adapters of one pool must share r, alpha, target layers, base model and (stored or regenerated) init
phi_0; ``_fold`` gives a layer's dense update, which the pool adds to the base weight of its resident module.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from fusionbench.api.errors import CheckpointError, ParamMismatchError
from fusionbench.api.params import ParamDict
from fusionbench.models.adapters import PEFT_PREFIX, AdapterCheckpoint, generate_init, read_adapter
from fusionbench.models.checkpoints import Resolved, looks_like_path
from fusionbench.models.linearize import llora_delta, lora_delta

DELTA_SUFFIX = ".delta_weight"  # merge_space=delta keys: "<peft layer path>.delta_weight"


class AdapterWeights:
    """The adapter-mode half of ``TransformersModelPool``: phi_0 and phi_t from peft / L-LoRA checkpoints, folded on use."""

    config: Any
    device: str
    adapter_prefix: str
    _resident: nn.Module
    _base: ParamDict
    _base_loc: Resolved
    _locs: dict[str, Resolved]
    _hint: str
    _where: Callable[[str], str]

    def _init_adapters(self) -> None:
        """Read and cross-check every adapter, find the layers they adapt, and set phi_0 (the pool's base)."""
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
        """L-LoRA pools need adapters that store phi_0; LoRA pools refuse L-LoRA adapters."""
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
        """One LoRA config (r, alpha, rsLoRA, targets, layers) and one base model across the pool's adapters."""
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
