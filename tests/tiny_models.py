"""Tiny CLIP / T5 / open_clip models, tokenizers and adapters, saved in the real on-disk formats.

Everything is built locally from the ``tiny-clip`` / ``tiny-t5`` presets (the hub is never
used): ``save_pretrained`` directories for bases and full fine-tunes, peft
``save_pretrained`` directories for LoRA, FusionBench's published L-LoRA layout and
FusionBench's own L-LoRA format. A "fine-tune" is the base plus seeded noise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from peft.tuners.lora import Linear as LoraLinear
from peft.utils import get_peft_model_state_dict
from safetensors.torch import save_file
from tokenizers.pre_tokenizers import ByteLevel
from torch import nn
from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizer, T5ForConditionalGeneration, T5Tokenizer

from fusionbench.models.adapters import save_llora_model
from fusionbench.models.linearize import linearize_lora_
from fusionbench.models.presets import build_preset

IMAGE_SIZE = 32
_T5_PIECES = "▁abcdefghijklmnopqrstuvwxyz0123456789.,:;'\"?!-"


def clip_tokenizer() -> CLIPTokenizer:
    """Byte-level CLIP tokenizer without merges: 512 byte tokens + <|startoftext|> (512) and <|endoftext|> (513)."""
    chars = sorted(ByteLevel.alphabet())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    return CLIPTokenizer(vocab=vocab, merges=[])


def t5_tokenizer() -> T5Tokenizer:
    """Character-level unigram T5 tokenizer: <pad> 0, </s> 1, <unk> 2, then lowercase characters."""
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)] + [(c, -1.0) for c in _T5_PIECES]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def image_processor() -> CLIPImageProcessor:
    return CLIPImageProcessor(size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})


def perturb_(module: nn.Module, seed: int, scale: float = 0.05, only: Optional[Iterable[str]] = None) -> None:
    """Add seeded Gaussian noise to floating parameters (all, or those whose name contains one of ``only``)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.is_floating_point() and (only is None or any(o in name for o in only)):
                p.add_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


# ------------------------------------------------------------------------ bases
def save_tiny_clip(path: Path, seed: int = 0) -> Path:
    """A tiny ``CLIPModel`` directory: weights, config, tokenizer and image processor."""
    model = build_preset("tiny-clip", device="cpu", seed=seed)
    model.save_pretrained(path)
    clip_tokenizer().save_pretrained(path)
    image_processor().save_pretrained(path)
    return path


def save_tiny_t5(path: Path, seed: int = 0) -> Path:
    """A tiny ``T5ForConditionalGeneration`` directory with its tokenizer."""
    model = build_preset("tiny-t5", device="cpu", seed=seed)
    model.save_pretrained(path)
    t5_tokenizer().save_pretrained(path)
    return path


def load_clip(path: Path) -> CLIPModel:
    return CLIPModel.from_pretrained(str(path)).eval()


def load_t5(path: Path) -> T5ForConditionalGeneration:
    return T5ForConditionalGeneration.from_pretrained(str(path)).eval()


def image_features(clip: CLIPModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected image embeddings, computed from the CLIPModel's own submodules."""
    return clip.visual_projection(clip.vision_model(pixel_values=pixel_values).pooler_output)


def vision_params(clip: CLIPModel) -> dict[str, torch.Tensor]:
    """The vision tower's parameters named as CLIP pools name them (vision_model.*, visual_projection.weight)."""
    out = {f"vision_model.{n}": p.detach().clone() for n, p in clip.vision_model.named_parameters()}
    out["visual_projection.weight"] = clip.visual_projection.weight.detach().clone()
    return out


# ------------------------------------------------------------------------- LoRA
def lora_model(root: nn.Module, r: int = 4, alpha: int = 8, targets: Iterable[str] = ("q_proj", "v_proj"),
               init_seed: int = 42, **kwargs: Any) -> PeftModel:
    """``get_peft_model`` right after ``torch.manual_seed(init_seed)`` (the paper's recipe)."""
    torch.manual_seed(init_seed)
    return get_peft_model(root, LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), **kwargs))


def adapter_state(model: PeftModel) -> dict[str, torch.Tensor]:
    """Adapter tensors in peft's saved key layout."""
    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(model).items()}


def save_fusionbench_llora(model: PeftModel, path: Path, phi0: dict[str, torch.Tensor]) -> Path:
    """FusionBench's published L-LoRA layout: adapter_config.json + linearized_adapter_model.safetensors.

    Keys ``<layer path>.model.lora_A.default.weight`` and ``<layer path>.params0_values.<i>``,
    i = index among the wrapped layer's parameters (base weight, base bias if any, lora_A, lora_B).
    """
    path.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for layer_path, module in model.named_modules():
        if isinstance(module, LoraLinear):
            for index, (name, p) in enumerate(module.named_parameters()):
                if "lora_" in name:
                    ab = "lora_A" if "lora_A" in name else "lora_B"
                    tensors[f"{layer_path}.model.{name}"] = p.detach().clone().contiguous()
                    tensors[f"{layer_path}.params0_values.{index}"] = phi0[f"{layer_path}.{ab}.weight"].clone().contiguous()
    save_file(tensors, str(path / "linearized_adapter_model.safetensors"))
    model.peft_config["default"].save_pretrained(str(path))
    return path


def save_own_llora(model: PeftModel, path: Path, phi0: dict[str, torch.Tensor]) -> Path:
    """FusionBench's own L-LoRA format, through linearize_lora_ + save_llora_model."""
    linearize_lora_(model, init=phi0)
    return save_llora_model(model, path)


def set_adapter_(model: PeftModel, state: dict[str, torch.Tensor]) -> None:
    """Write adapter tensors (peft saved layout) into a peft model."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for key, value in state.items():
            path, ab = key.rsplit(".lora_", 1)
            params[f"{path}.lora_{ab[0]}.default.weight"].copy_(value)


# --------------------------------------------------------------------- open_clip
TINY_OPEN_CLIP = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": IMAGE_SIZE, "layers": 2, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 2},
}


def write_open_clip_config(folder: Path, name: str = "tiny-oc") -> Path:
    """An open_clip architecture JSON file ``<name>.json`` for a tiny ViT CLIP."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(TINY_OPEN_CLIP))
    return path
