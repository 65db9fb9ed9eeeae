"""LoRA and L-LoRA adapter checkpoints: reading, writing, consistency checks, init regeneration.

Formats read (keys are normalised to peft's saved layout ``<module path>.lora_A.weight``):

* peft: ``adapter_config.json`` + ``adapter_model.safetensors`` (or a weights-only
  ``adapter_model.bin``).
* FusionBench's published L-LoRA: ``adapter_config.json`` +
  ``linearized_adapter_model.safetensors`` with keys ``<path>.model.lora_A.default.weight``
  and ``<path>.params0_values.<i>`` (i = index of the tensor among the wrapped layer's
  parameters: base weight, base bias if any, lora_A, lora_B).
* ours (``fusionbench.adapter`` = ``lora`` | ``llora`` in the safetensors metadata):
  peft's two files holding phi_t, plus ``adapter_init.safetensors`` holding phi_0 under the
  same keys. peft tooling reads the directory as a plain LoRA adapter; an L-LoRA one needs
  :func:`fusionbench.models.linearize.linearize_lora_` with that init to compute the L-LoRA function.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch
from safetensors import SafetensorError, safe_open
from torch import nn

from fusionbench.api.errors import CheckpointError, ConfigError
from fusionbench.models.checkpoints import load_file_state_dict, read_json
from fusionbench.models.streaming import save_tensors

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter_model.safetensors"
ADAPTER_WEIGHTS_BIN = "adapter_model.bin"
ADAPTER_INIT = "adapter_init.safetensors"
PUBLISHED_LLORA_WEIGHTS = "linearized_adapter_model.safetensors"
KIND_KEY = "fusionbench.adapter"  # safetensors metadata: "lora" or "llora"
FORMAT_KEY = "fusionbench.format"
FORMAT_VERSION = "1"
PEFT_PREFIX = "base_model.model."
KINDS = ("lora", "llora")

_PEFT_KEY = re.compile(r"(?P<path>.+)\.lora_(?P<ab>[AB])(?:\.(?P<adapter>[^.]+))?\.weight")
_PUBLISHED_PARAM = re.compile(r"(?P<path>.+)\.model\.lora_(?P<ab>[AB])\.[^.]+\.weight")
_PUBLISHED_INIT = re.compile(r"(?P<path>.+)\.params0_values\.(?P<index>\d+)")


@dataclass
class AdapterCheckpoint:
    """One task's adapter: its LoRA config, phi_t and (when stored) phi_0, keyed ``<path>.lora_A.weight``."""

    path: Path
    config: dict[str, Any]
    phi: dict[str, torch.Tensor]
    phi0: Optional[dict[str, torch.Tensor]]
    kind: str  # "lora" or "llora"
    layout: str  # "peft", "fusionbench" (ours) or "published-llora" (FusionBench's linearized file)

    @property
    def rank(self) -> int:
        return int(self.config.get("r", 8))

    @property
    def alpha(self) -> float:
        return float(self.config.get("lora_alpha", 8))

    @property
    def scaling(self) -> float:
        """``lora_alpha / r`` (``/ sqrt(r)`` with rsLoRA), as peft computes it."""
        return self.alpha / (math.sqrt(self.rank) if self.config.get("use_rslora") else self.rank)

    @property
    def target_modules(self) -> Any:
        targets = self.config.get("target_modules")
        return sorted(targets) if isinstance(targets, list) else targets

    @property
    def base_model(self) -> Optional[str]:
        return self.config.get("base_model_name_or_path") or None

    def layers(self) -> list[str]:
        """Module paths of the adapted layers (peft key layout, without the lora suffix)."""
        return sorted({key[: -len(".lora_A.weight")] for key in self.phi if key.endswith(".lora_A.weight")})


def normalise_key(key: str) -> str:
    """peft's saved layout: drop the adapter name (``lora_A.default.weight`` -> ``lora_A.weight``)."""
    match = _PEFT_KEY.fullmatch(key)
    if match and match["adapter"]:
        return f"{match['path']}.lora_{match['ab']}.weight"
    return key


def _check_config(config: dict[str, Any], where: str) -> None:
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        raise CheckpointError(f"{where} is a {config.get('peft_type')} adapter; FusionBench pools read LoRA adapters only")
    unsupported = [
        name
        for name, bad in (
            ("use_dora", bool(config.get("use_dora"))),
            ("lora_bias", bool(config.get("lora_bias"))),
            ("bias", config.get("bias", "none") not in (None, "none")),
            ("rank_pattern", bool(config.get("rank_pattern"))),
            ("alpha_pattern", bool(config.get("alpha_pattern"))),
            ("modules_to_save", bool(config.get("modules_to_save"))),
        )
        if bad
    ]
    if unsupported:
        raise CheckpointError(
            f"{where} sets {', '.join(unsupported)} in {ADAPTER_CONFIG}, which FusionBench pools do not support; "
            f"use plain LoRA adapters (one r and lora_alpha, no DoRA, biases or extra trainable modules)"
        )


def _check_tensors(phi: Mapping[str, torch.Tensor], where: str) -> None:
    odd = [k for k in phi if not _PEFT_KEY.fullmatch(k)]
    if odd:
        raise CheckpointError(
            f"{where} holds tensors other than lora_A/lora_B weights (first: {sorted(odd)[0]}); "
            f"FusionBench pools read plain LoRA adapters only"
        )
    layers = {k.rsplit(".lora_", 1)[0] for k in phi}
    for layer in sorted(layers):
        A, B = phi.get(f"{layer}.lora_A.weight"), phi.get(f"{layer}.lora_B.weight")
        if A is None or B is None:
            raise CheckpointError(f"{where} has only one of lora_A / lora_B for layer {layer!r}; the adapter file is incomplete")
        if A.dim() != 2 or B.dim() != 2 or A.shape[0] != B.shape[1]:
            raise CheckpointError(
                f"{where}: layer {layer!r} has lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)}, which do not chain (B @ A)"
            )


def _metadata(file: Path) -> dict[str, str]:
    try:
        with safe_open(str(file), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"adapter file {str(file)!r} is unreadable ({exc}); re-download or re-save it") from None


def _read_published_llora(file: Path, where: str) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """phi and phi_0 from FusionBench's ``linearized_adapter_model.safetensors``."""
    params: dict[str, dict[str, torch.Tensor]] = {}
    inits: dict[str, dict[int, torch.Tensor]] = {}
    for key, tensor in load_file_state_dict(file).items():
        if match := _PUBLISHED_PARAM.fullmatch(key):
            params.setdefault(match["path"], {})[match["ab"]] = tensor
        elif match := _PUBLISHED_INIT.fullmatch(key):
            inits.setdefault(match["path"], {})[int(match["index"])] = tensor
        else:
            raise CheckpointError(f"{where}: unexpected key {key!r} in {file.name}; expected <path>.model.lora_A.default.weight or <path>.params0_values.<i>")
    phi: dict[str, torch.Tensor] = {}
    phi0: dict[str, torch.Tensor] = {}
    for path, ab in sorted(params.items()):
        if set(ab) != {"A", "B"}:
            raise CheckpointError(f"{where}: layer {path!r} lacks lora_A or lora_B in {file.name}; the file is incomplete")
        init = inits.get(path, {})
        if len(init) != 2:
            raise CheckpointError(
                f"{where}: layer {path!r} stores {len(init)} of its 2 phi_0 tensors (params0_values) in {file.name}; "
                f"an L-LoRA checkpoint needs its init phi_0, re-export it with the init included"
            )
        i_A, i_B = sorted(init)  # lora_A precedes lora_B among the wrapped layer's parameters
        if init[i_A].shape != ab["A"].shape or init[i_B].shape != ab["B"].shape:
            raise CheckpointError(f"{where}: layer {path!r} has params0_values whose shapes differ from lora_A / lora_B")
        phi[f"{path}.lora_A.weight"], phi[f"{path}.lora_B.weight"] = ab["A"], ab["B"]
        phi0[f"{path}.lora_A.weight"], phi0[f"{path}.lora_B.weight"] = init[i_A], init[i_B]
    orphans = sorted(set(inits) - set(params))
    if orphans:
        raise CheckpointError(f"{where}: {file.name} has params0_values for layer {orphans[0]!r} but no lora weights")
    return phi, phi0


def read_adapter(path: Path, where: str) -> AdapterCheckpoint:
    """Read an adapter directory in any supported format (see module docstring).

    ``where`` names the checkpoint in error messages (e.g. "checkpoint of task 'mnli' (/path)").
    """
    if not path.is_dir():
        raise CheckpointError(f"{where} is not a directory; a LoRA / L-LoRA checkpoint is a directory with {ADAPTER_CONFIG}")
    if not (path / ADAPTER_CONFIG).is_file() and (path / "config.json").is_file():
        raise CheckpointError(
            f"{where} holds a full model (config.json), not a LoRA / L-LoRA adapter ({ADAPTER_CONFIG}); "
            f"a pool of full fine-tuned models needs modelpool.mode=full, an adapter pool needs adapter folders"
        )
    config = read_json(path / ADAPTER_CONFIG, where)
    _check_config(config, where)
    phi0: Optional[dict[str, torch.Tensor]] = None
    if (path / PUBLISHED_LLORA_WEIGHTS).is_file():
        phi, phi0 = _read_published_llora(path / PUBLISHED_LLORA_WEIGHTS, where)
        kind, layout = "llora", "published-llora"
    elif (path / ADAPTER_WEIGHTS).is_file() or (path / ADAPTER_WEIGHTS_BIN).is_file():
        file = path / ADAPTER_WEIGHTS if (path / ADAPTER_WEIGHTS).is_file() else path / ADAPTER_WEIGHTS_BIN
        meta = _metadata(file) if file.suffix == ".safetensors" else {}
        kind = meta.get(KIND_KEY, "lora")
        if kind not in KINDS:
            raise CheckpointError(f"{where}: {file.name} declares {KIND_KEY}={kind!r}; expected one of {', '.join(KINDS)}")
        layout = "fusionbench" if KIND_KEY in meta else "peft"
        phi = {normalise_key(k): v for k, v in load_file_state_dict(file).items()}
        if (path / ADAPTER_INIT).is_file():
            phi0 = {normalise_key(k): v for k, v in load_file_state_dict(path / ADAPTER_INIT).items()}
        elif kind == "llora":
            raise CheckpointError(
                f"{where} is an L-LoRA adapter without its init phi_0 ({ADAPTER_INIT} is missing); "
                f"L-LoRA checkpoints must store phi_0, re-save it with fusionbench.models.adapters.save_adapter(..., phi0=...)"
            )
    else:
        raise CheckpointError(
            f"{where} holds no adapter weights ({ADAPTER_WEIGHTS}, {ADAPTER_WEIGHTS_BIN} or {PUBLISHED_LLORA_WEIGHTS}); "
            f"point the entry at a directory saved with peft's save_pretrained or save_adapter"
        )
    phi = {k if k.startswith(PEFT_PREFIX) else PEFT_PREFIX + k: v for k, v in phi.items()}
    _check_tensors(phi, where)
    if phi0 is not None:
        phi0 = {k if k.startswith(PEFT_PREFIX) else PEFT_PREFIX + k: v for k, v in phi0.items()}
        mismatched = sorted(k for k in phi.keys() | phi0.keys() if k not in phi or k not in phi0 or phi[k].shape != phi0[k].shape)
        if mismatched:
            raise CheckpointError(f"{where}: the init phi_0 does not match the adapter's tensors (first: {mismatched[0]})")
    return AdapterCheckpoint(path, config, phi, phi0, kind, layout)


def save_adapter(
    path: str | Path,
    config: Any,
    phi: Mapping[str, torch.Tensor],
    phi0: Optional[Mapping[str, torch.Tensor]] = None,
    kind: str = "lora",
) -> Path:
    """Write an adapter in FusionBench's format (module docstring); returns the directory.

    ``config`` is a peft ``LoraConfig`` or its dict; ``phi`` / ``phi0`` are keyed in peft's
    layout (adapter names are dropped). ``kind="llora"`` requires ``phi0``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "llora" and phi0 is None:
        raise CheckpointError("an L-LoRA adapter must be saved with its init phi_0; pass phi0=")
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config)
    data = {k: (sorted(v) if isinstance(v, set) else v) for k, v in data.items()}
    (out / ADAPTER_CONFIG).write_text(json.dumps(data, indent=2, sort_keys=True, default=str))
    meta = {"format": "pt", KIND_KEY: kind, FORMAT_KEY: FORMAT_VERSION}
    tensors = {normalise_key(k): v.detach().contiguous().cpu() for k, v in phi.items()}
    save_tensors(tensors, out / ADAPTER_WEIGHTS, meta)
    if phi0 is not None:
        init = {normalise_key(k): v.detach().contiguous().cpu() for k, v in phi0.items()}
        if init.keys() != tensors.keys():
            raise CheckpointError("phi0 must hold exactly the tensors of phi (same keys)")
        save_tensors(init, out / ADAPTER_INIT, {**meta, KIND_KEY: kind})
    return out


def save_llora_model(model: nn.Module, path: str | Path, adapter: str = "default") -> Path:
    """Save a peft model linearised by ``fusionbench.models.linearize.linearize_lora_`` (phi_t and phi_0)."""
    from fusionbench.models.linearize import llora_state

    phi, phi0 = llora_state(model)
    return save_adapter(path, model.peft_config[adapter], phi, phi0, kind="llora")


def lora_config(config: Mapping[str, Any]) -> Any:
    """A peft ``LoraConfig`` from an ``adapter_config.json`` dict (unknown keys dropped)."""
    from peft import LoraConfig

    known = {f.name for f in dataclasses.fields(LoraConfig)}
    return LoraConfig(**{k: v for k, v in config.items() if k in known})


def generate_init(root: nn.Module, config: Mapping[str, Any], seed: int) -> dict[str, torch.Tensor]:
    """phi_0 as peft initialises it on ``root`` after ``torch.manual_seed(seed)`` (the paper's recipe).

    Works on a float32 CPU copy of ``root``; the global RNG state is left untouched. Keys are in
    peft's saved layout. Only inits that leave the base weights alone are accepted.
    """
    from peft import get_peft_model
    from peft.utils import get_peft_model_state_dict

    init = config.get("init_lora_weights", True)
    if init not in (True, False, "gaussian"):
        raise CheckpointError(
            f"cannot regenerate the LoRA init phi_0 for init_lora_weights={init!r}; "
            f"store it with the adapters (save_adapter(..., phi0=...)) instead"
        )
    cfg = lora_config({**config, "inference_mode": False})
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_peft_model(copy.deepcopy(root).to("cpu", torch.float32), cfg)
    state = get_peft_model_state_dict(model)
    return {k: v.detach().clone().float().cpu() for k, v in state.items()}


def add_lora(root: nn.Module, config: Any, init_seed: int, key: str, model: str) -> Any:
    """``peft.get_peft_model(root, config)`` with the adapters initialised after ``torch.manual_seed(init_seed)``.

    The init depends on ``init_seed`` only (the pools regenerate it from there). Targets that match no
    layer are a ConfigError naming ``key``, the option that set them, and the layers there are.
    """
    from peft import get_peft_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        try:
            return get_peft_model(root, config)
        except ValueError as exc:  # peft's NoMatchingPeftModuleError is a ValueError
            raise ConfigError(
                f"{key}={sorted(config.target_modules)} match no layer of model {model!r} ({str(exc).splitlines()[0]}); "
                f"CLIP attention layers are q_proj, k_proj, v_proj, out_proj; T5's are q, k, v, o"
            ) from None
