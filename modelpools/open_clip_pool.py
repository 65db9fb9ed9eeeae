"""open_clip image encoders fine-tuned fully: a pool for task-arithmetic-style checkpoints (type ``open_clip``).

Task arithmetic (Ilharco et al., ICLR 2023) and its follow-ups publish fine-tuned open_clip
image encoders; this pool fuses them. The merged module is ``model.visual`` (its
projection included); the base supplies the text tower, tokenizer and image transform.
Task checkpoints are state dicts (``.safetensors``, or a ``.pt`` loadable with
``torch.load(weights_only=True)``) whose keys may carry any prefix (``visual.``,
``model.visual.`` ...). Pickled whole modules are refused: convert them to state dicts.
A merged model is saved as open_clip's hub layout (the whole CLIP with the merged image encoder), which
``open_clip.create_model_and_transforms("local-dir:DIR")`` loads.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from fusionbench.api.errors import CheckpointError, ConfigError, choices_text, did_you_mean
from fusionbench.api.families import ZeroShotImageModel
from fusionbench.api.modelpool import ModelPool, ModelPoolConfig
from fusionbench.api.params import ParamDict
from fusionbench.api.roles import TensorRoles
from fusionbench.modelpools.transformers_config import DTYPES
from fusionbench.models.checkpoints import (
    Resolved,
    content_digest,
    entry_id,
    hub_unreachable_reason,
    load_state_dict,
    looks_like_path,
    match_state_keys,
    tensor_shapes,
)

_SAFE_ALTERNATIVE = {"open_clip_pytorch_model.bin": "open_clip_model.safetensors"}
_TEXT_BATCH = 256


@dataclass
class OpenCLIPPoolConfig(ModelPoolConfig):
    """Config of an open_clip pool (full fine-tuning only)."""

    model_name: str = "ViT-B-32"  # open_clip architecture name (open_clip.list_models())
    pretrained: str = "openai"  # open_clip pretrained tag of model_name, or a local state-dict file of the whole base CLIP
    model_config: Optional[str] = None  # JSON architecture file named <model_name>.json, for architectures open_clip lacks
    models: dict[str, str] = field(default_factory=dict)  # task -> local state-dict file of its fine-tuned image encoder
    task_set: str = ""  # named task set (ta8 | tall14 | tall20) the shipped configs generate `models` from
    checkpoint: str = ""  # checkpoint file pattern the shipped configs generate `models` from ({name}: the release's task name)
    checkpoint_names: dict[str, str] = field(default_factory=dict)  # task -> the release's name for it (fills {name})
    dtype: str = "float32"  # resident model dtype: float32 | bfloat16 | float16
    cache_finetuned: bool = True  # keep loaded fine-tuned parameters in memory


# open_clip's own parameter names for its vision transformers (model.visual): ``proj`` is the output
# projection, so it is averaged like transformers' visual_projection, not factorised as a matrix.
OPEN_CLIP_ROLES = TensorRoles("open_clip ViT", (
    (r"(^|\.)(class_embedding|positional_embedding|conv1\.weight)$", "embedding"),
    (r"(^|\.)proj$", "projection"),
    (r"(^|\.)ln_\w+\.(weight|bias)$", "norm"),
    (r"(in_proj_bias|\.bias)$", "bias"),
    (r"(in_proj_weight|out_proj\.weight|c_fc\.weight|c_proj\.weight)$", "matrix"),
))


class OpenCLIPModelPool(ModelPool):
    """open_clip image encoders (full fine-tuning) with zero-shot evaluation through the base CLIP."""

    name = "open_clip"
    description = "open_clip image encoders, fully fine-tuned (task-arithmetic-style checkpoints)"
    reference = "Ilharco et al., Editing models with task arithmetic, ICLR 2023 (arXiv 2212.04089)"
    Config = OpenCLIPPoolConfig

    def tensor_role(self, name: str, tensor: torch.Tensor) -> str:
        return OPEN_CLIP_ROLES.role(name)

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        import open_clip

        if config.dtype not in DTYPES:
            raise ConfigError(f"modelpool.dtype={config.dtype!r} is not valid; choose one of {', '.join(DTYPES)}")
        if not config.models:
            raise ConfigError(f"pool {config.name!r} lists no models; add modelpool.models.<task>=<state-dict file>")
        if config.model_config:
            self._register_architecture(config.model_config, config.model_name)
        if config.model_name not in open_clip.list_models():
            valid = open_clip.list_models()
            raise ConfigError(
                f"modelpool.model_name={config.model_name!r} is not an open_clip architecture.{did_you_mean(config.model_name, valid)} "
                f"See open_clip.list_models(), or give modelpool.model_config=<file>.json"
            )
        self._locs = {t: self._local(f"modelpool.models.{t}", p, f"checkpoint of task {t!r}") for t, p in config.models.items()}
        base_file, pretrained_cfg = self._locate_base()
        self._hint = f"every model of pool {config.name!r} must be fine-tuned from {config.model_name}/{config.pretrained}"

        self._quick_gelu = bool(pretrained_cfg.get("quick_gelu", False))
        self._clip, _, self._transform = open_clip.create_model_and_transforms(
            config.model_name,
            pretrained=None,
            force_quick_gelu=self._quick_gelu,
            image_mean=pretrained_cfg.get("mean"),
            image_std=pretrained_cfg.get("std"),
            image_interpolation=pretrained_cfg.get("interpolation"),
            image_resize_mode=pretrained_cfg.get("resize_mode"),
        )
        self._load_base_weights(base_file)
        self._base_id = content_digest(base_file) if self._base_is_path else f"open_clip:{config.model_name}/{config.pretrained}"
        self._clip = self._clip.to(self.device, DTYPES[config.dtype]).eval().requires_grad_(False)
        self._tokenizer = open_clip.get_tokenizer(config.model_name)
        self._resident: nn.Module = self._clip.visual
        self._base = ParamDict({n: p.detach().float().cpu().clone() for n, p in self._resident.named_parameters()})
        self._cache: dict[str, ParamDict] = {}
        self._identity: Optional[dict[str, Any]] = None
        self._wrapped: Optional[ZeroShotImageModel] = None
        for task, loc in self._locs.items():
            shapes = tensor_shapes(loc.path)
            if shapes is not None:  # safetensors: validate names and shapes now, from the header only
                self._mapping(shapes, task)
            else:  # a torch pickle: load it now (refused unless weights-only) so bad files fail before any work
                self.finetuned(task)

    # ------------------------------------------------------------------ setup
    @staticmethod
    def _register_architecture(file: str, model_name: str) -> None:
        import open_clip

        path = Path(file).expanduser()
        if not path.is_file():
            raise ConfigError(f"modelpool.model_config={file!r} does not exist; give an open_clip model config JSON file")
        if path.stem != model_name:
            raise ConfigError(
                f"modelpool.model_config file {path.name!r} registers architecture {path.stem!r}, but model_name is "
                f"{model_name!r}; name the file {model_name}.json or set modelpool.model_name={path.stem}"
            )
        open_clip.add_model_config(path)

    @staticmethod
    def _local(key: str, value: str, what: str) -> Resolved:
        path = Path(value).expanduser()
        pickled = path.with_suffix(".pt")
        if not path.exists() and path.suffix == ".safetensors" and pickled.is_file():
            raise CheckpointError(
                f"{what} {value!r} does not exist, but the release's pickle {str(pickled)!r} does; convert it once with "
                f"`fusionbench convert src={pickled} out={path} trust_pickle=true`"
            )
        if not path.exists():
            raise CheckpointError(f"{what} {value!r} does not exist; set {key} to an existing local state-dict file")
        return Resolved(path.resolve())

    def _locate_base(self) -> tuple[Path, dict[str, Any]]:
        """The base weight file (local, HF-cached or downloaded) and its open_clip pretrained config."""
        import open_clip
        from huggingface_hub import try_to_load_from_cache

        value, model_name = self.config.pretrained, self.config.model_name
        self._base_is_path = Path(value).expanduser().exists() or looks_like_path(value)
        if self._base_is_path:
            return self._local("modelpool.pretrained", value, "base model").path, {}
        cfg = open_clip.get_pretrained_cfg(model_name, value)
        if not cfg:
            tags = open_clip.list_pretrained_tags_by_model(model_name)
            raise ConfigError(
                f"modelpool.pretrained={value!r} is neither a local file nor an open_clip pretrained tag of {model_name}; "
                f"valid tags: {choices_text(tags)}"
            )
        model_id, filename = os.path.split(cfg.get("hf_hub", ""))  # "org/name/" or "org/name/file"
        filename = filename or "open_clip_pytorch_model.bin"
        for name in (_SAFE_ALTERNATIVE.get(filename), filename):
            cached = try_to_load_from_cache(model_id, name) if model_id and name else None
            if isinstance(cached, str):
                return Path(cached), cfg
        reason = hub_unreachable_reason()
        if reason is not None:
            raise CheckpointError(
                f"base model {model_name}/{value} (open_clip weights {model_id or cfg.get('url')}) is not in the local "
                f"Hugging Face cache and the hub is unreachable ({reason}); set modelpool.pretrained=/path/to/base_state_dict.safetensors, "
                f"or run offline with modelpool=mini_clip_full"
            )
        try:
            return Path(open_clip.download_pretrained(cfg)), cfg
        except Exception as exc:  # download errors come in many types
            raise CheckpointError(
                f"cannot download open_clip weights {model_name}/{value} ({type(exc).__name__}: {exc}); "
                f"set modelpool.pretrained to a local state-dict file"
            ) from None

    def _load_base_weights(self, file: Path) -> None:
        state = load_state_dict(file)
        result = self._clip.load_state_dict(state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            bad = sorted(result.missing_keys)[:1] or sorted(result.unexpected_keys)[:1]
            kind = "lacks" if result.missing_keys else "has the unexpected tensor"
            raise CheckpointError(
                f"base weights {str(file)!r} do not fit open_clip architecture {self.config.model_name!r}: it {kind} {bad[0]}; "
                f"pick the model_name the weights were saved from (e.g. a -quickgelu variant) or other weights"
            )

    def _mapping(self, found: dict[str, tuple[int, ...]], task: str) -> dict[str, str]:
        buffers = {n for n, _ in self._resident.named_buffers()}
        expected = {n: tuple(t.shape) for n, t in self._base.items()}
        return match_state_keys(expected, found, f"checkpoint of task {task!r} ({self._locs[task].path})", self._hint, ignore=buffers)

    # --------------------------------------------------------------- contract
    def all_tasks(self) -> list[str]:
        return list(self.config.models)

    @property
    def mode(self) -> str:
        return "full"

    def base(self) -> ParamDict:
        return ParamDict(self._base)

    def finetuned(self, task: str) -> ParamDict:
        if task not in self._locs:
            raise ConfigError(f"pool {self.config.name!r} has no task {task!r}; valid tasks: {choices_text(self.all_tasks())}")
        if task in self._cache:
            return ParamDict(self._cache[task])
        state = load_state_dict(self._locs[task].path)
        mapping = self._mapping({k: tuple(v.shape) for k, v in state.items()}, task)
        params = ParamDict({n: state[mapping[n]].float() for n in self._base})
        if self.config.cache_finetuned:
            self._cache[task] = params
        return ParamDict(params)

    def model(self, params: ParamDict) -> ZeroShotImageModel:
        self._base.check_compatible(params)
        with torch.no_grad():
            for name, p in self._resident.named_parameters():
                p.copy_(params[name])
        if self._wrapped is None:
            self._wrapped = ZeroShotImageModel(
                vision=_Encoder(self._resident),
                encode_texts=self._encode_texts,
                preprocess=self._preprocess,
                logit_scale=float(self._clip.logit_scale.exp()),
                text_fingerprint=hashlib.sha256(json.dumps(["open_clip-text", self.config.model_name, self._base_id]).encode()).hexdigest(),
                preprocess_fingerprint=hashlib.sha256(repr(self._transform).encode()).hexdigest(),
                device=self.device,
            )
        return self._wrapped

    def save(self, params: ParamDict, directory: Path, save_format: str) -> None:
        """The whole CLIP, its image encoder merged, as ``open_clip_model.safetensors`` beside ``open_clip_config.json``
        (architecture and preprocessing): open_clip's hub layout, loaded by ``create_model_and_transforms("local-dir:DIR")``."""
        import open_clip
        from open_clip.push_to_hf_hub import save_config_for_hf
        from safetensors.torch import save_file

        self.model(params)
        save_file({k: v.contiguous() for k, v in self._clip.state_dict().items()}, str(directory / "open_clip_model.safetensors"))
        architecture = dict(open_clip.get_model_config(self.config.model_name), **({"quick_gelu": True} if self._quick_gelu else {}))
        save_config_for_hf(self._clip, directory / "open_clip_config.json", architecture)

    def identity(self) -> dict[str, Any]:
        if self._identity is None:
            self._identity = {
                "type": self.name,
                "mode": "full",
                "base": self._base_id,
                "models": {t: entry_id(loc) for t, loc in self._locs.items()},
                "dtype": self.config.dtype,
            }
        return dict(self._identity)

    # ------------------------------------------------------------- evaluation
    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        with torch.no_grad():
            for i in range(0, len(texts), _TEXT_BATCH):
                tokens = self._tokenizer(list(texts[i : i + _TEXT_BATCH])).to(self.device)
                chunks.append(self._clip.encode_text(tokens).float())
        return torch.cat(chunks)

    def _preprocess(self, images: list[Any]) -> torch.Tensor:
        return torch.stack([self._transform(image) for image in images])


class _Encoder(nn.Module):
    """open_clip's image encoder with inputs cast to its dtype."""

    def __init__(self, visual: nn.Module) -> None:
        super().__init__()
        self.visual = visual

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        dtype = next(self.visual.parameters()).dtype
        return self.visual(pixel_values.to(dtype))
