"""Architecture presets: the exact shapes of the benchmark's models, built without downloading weights.

``build_preset("clip-vit-base-patch16")`` (or any other name of the model: ``clip-vit-b16``,
``openai/clip-vit-base-patch16``, see ``fusionbench.models.names``) gives a randomly initialised
``CLIPModel`` with that checkpoint's shapes (on the ``meta`` device by default: shapes only, no
memory), for tests and profiling. ``tiny-clip`` / ``tiny-t5`` are CPU-test sized and match
the tiny tokenizers of ``tests/tiny_models.py`` (vocabularies of 514 and 64 tokens).
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.models.names import MODELS, canonical_name

_CLIP_TEXT_BASE = dict(hidden_size=512, intermediate_size=2048, num_attention_heads=8, num_hidden_layers=12)
_CLIP_TEXT_LARGE = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12)
_VIT_B = dict(hidden_size=768, intermediate_size=3072, num_attention_heads=12, num_hidden_layers=12, image_size=224)
_VIT_L = dict(hidden_size=1024, intermediate_size=4096, num_attention_heads=16, num_hidden_layers=24, image_size=224)

CLIP_PRESETS: dict[str, dict[str, Any]] = {
    "clip-vit-base-patch32": dict(text=_CLIP_TEXT_BASE, vision=dict(_VIT_B, patch_size=32), projection_dim=512),
    "clip-vit-base-patch16": dict(text=_CLIP_TEXT_BASE, vision=dict(_VIT_B, patch_size=16), projection_dim=512),
    "clip-vit-large-patch14": dict(text=_CLIP_TEXT_LARGE, vision=dict(_VIT_L, patch_size=14), projection_dim=768),
    "tiny-clip": dict(
        text=dict(
            hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2,
            vocab_size=514, max_position_embeddings=32, bos_token_id=512, eos_token_id=513, pad_token_id=513,
        ),
        vision=dict(hidden_size=32, intermediate_size=64, num_attention_heads=2, num_hidden_layers=2, image_size=32, patch_size=8),
        projection_dim=16,
    ),
}
_T5_COMMON = dict(
    vocab_size=32128, d_kv=64, feed_forward_proj="gated-gelu", tie_word_embeddings=False,
    decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
)
T5_PRESETS: dict[str, dict[str, Any]] = {
    "flan-t5-base": dict(_T5_COMMON, d_model=768, d_ff=2048, num_heads=12, num_layers=12, num_decoder_layers=12),
    "flan-t5-large": dict(_T5_COMMON, d_model=1024, d_ff=2816, num_heads=16, num_layers=24, num_decoder_layers=24),
    "tiny-t5": dict(
        _T5_COMMON, vocab_size=64, d_model=32, d_ff=64, d_kv=8, num_heads=4, num_layers=2, num_decoder_layers=2,
        relative_attention_num_buckets=8, relative_attention_max_distance=16,
    ),
}
PRESETS = sorted(CLIP_PRESETS) + sorted(T5_PRESETS)  # canonical names (and the tiny test presets)
_NAMES = sorted(PRESETS + [alias for model in MODELS for alias in model.names() if model.canonical in PRESETS])


def preset_name(name: str) -> str:
    """The preset ``name`` (any of its model's names) refers to; an unknown name is a ConfigError with the valid ones."""
    canonical = canonical_name(name)
    if canonical not in PRESETS:
        raise ConfigError(f"unknown architecture preset {name!r}.{did_you_mean(name, _NAMES)} Valid presets: {choices_text(PRESETS)} (or another name of one)")
    return canonical


def preset_config(name: str) -> Any:
    """The transformers config (``CLIPConfig`` or ``T5Config``) of a preset (any of its model's names)."""
    name = preset_name(name)
    if name in CLIP_PRESETS:
        from transformers import CLIPConfig

        spec = CLIP_PRESETS[name]
        return CLIPConfig(text_config=dict(spec["text"]), vision_config=dict(spec["vision"]), projection_dim=spec["projection_dim"])
    from transformers import T5Config

    return T5Config(**T5_PRESETS[name])


def build_preset(name: str, device: str = "meta", seed: Optional[int] = None) -> nn.Module:
    """A randomly initialised ``CLIPModel`` / ``T5ForConditionalGeneration`` with the preset's shapes.

    On ``meta`` (the default) no memory is allocated: use it to count parameters. ``seed``
    makes real-device initialisation reproducible without touching the global RNG.
    """
    from transformers import CLIPModel, T5ForConditionalGeneration

    name = preset_name(name)
    config = preset_config(name)
    cls = CLIPModel if name in CLIP_PRESETS else T5ForConditionalGeneration
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        with torch.device(device):
            model = cls(config)
            if name in T5_PRESETS and not T5_PRESETS[name]["tie_word_embeddings"]:
                # transformers' T5Config always ties; Flan-T5 checkpoints carry their own lm_head (as loading them does)
                model.lm_head.weight = nn.Parameter(torch.empty_like(model.shared.weight).normal_(std=config.initializer_factor))
    return model.eval()


def lora_root(model: nn.Module) -> nn.Module:
    """The module LoRA adapters wrap: the vision tower of a CLIP model (as FusionBench does), else the model."""
    return model.vision_model if hasattr(model, "vision_model") else model


def lora_trainable_params(name: str, target_modules: Sequence[str], r: int, lora_alpha: int = 32) -> int:
    """Trainable parameters of a peft LoRA on a preset (built on ``meta``, so it costs no memory)."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(lora_root(build_preset(name)), LoraConfig(r=r, lora_alpha=lora_alpha, target_modules=list(target_modules)))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
