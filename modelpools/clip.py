"""CLIP vision towers through transformers: full, LoRA and L-LoRA pools (type ``clip``).

Merged is the image side (vision transformer + visual projection), as in the L-LoRA paper
(Tang et al., ICLR 2024) and FusionBench; the text tower, tokenizer and image processor
come from the base ``CLIPModel`` directory and drive zero-shot classification
(Radford et al., ICML 2021). LoRA adapters wrap the vision transformer (peft keys
``base_model.model.encoder.layers.<i>.self_attn.q_proj.lora_A.weight``), as FusionBench's do.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from fusionbench.api.errors import ParamMismatchError
from fusionbench.api.families import ModelFamily, ZeroShotImageModel
from fusionbench.api.roles import TensorRoles
from fusionbench.modelpools.hf import TransformersModelPool
from fusionbench.modelpools.transformers_config import TransformersPoolConfig
from fusionbench.modelpools.streamed import load_weights
from fusionbench.models.checkpoints import entry_id, match_state_keys

PROJECTION = "visual_projection.weight"
_ARCH_FIELDS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "patch_size", "image_size")
_TEXT_BATCH = 256


class CLIPVisionTower(nn.Module):
    """Vision transformer + visual projection: pixel values (B, 3, H, W) -> projected image embeddings (B, D)."""

    def __init__(self, vision_model: nn.Module, visual_projection: nn.Linear) -> None:
        super().__init__()
        self.vision_model = vision_model
        self.visual_projection = visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        pixel_values = pixel_values.to(self.visual_projection.weight.dtype)
        return self.visual_projection(self.vision_model(pixel_values=pixel_values).pooler_output)


def clip_vision_signature(path: Path) -> Optional[dict[str, Any]]:
    """Architecture fields of the vision tower described by ``path``'s config.json (None without one)."""
    from transformers import AutoConfig

    if not (path.is_dir() and (path / "config.json").is_file()):
        return None
    config = AutoConfig.from_pretrained(str(path))
    vision = getattr(config, "vision_config", config)
    return {"model_type": getattr(vision, "model_type", None), **{k: getattr(vision, k, None) for k in _ARCH_FIELDS}}


class CLIPModelPool(TransformersModelPool):
    """CLIP (transformers) vision towers fine-tuned fully, with LoRA or with L-LoRA."""

    name = "clip"
    description = "CLIP vision towers (transformers): full / LoRA / L-LoRA fine-tuned, zero-shot evaluation"
    reference = "Tang et al., Parameter Efficient Multi-Task Model Fusion with Partial Linearization, ICLR 2024 (arXiv 2310.04742)"
    Config = TransformersPoolConfig
    offline_hint = "run offline with modelpool=mini_clip_{mode} (the embedded mini world)"
    adapter_prefix = "vision_model."

    def tensor_role(self, name: str, tensor: torch.Tensor) -> str:
        return CLIPFamily.tensor_roles.role(name)

    def _load_base(self, path: Path) -> nn.Module:
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        def load() -> tuple[Any, dict]:
            clip, info = load_weights(CLIPModel, path, self._dtype, self.device)
            return (clip, CLIPImageProcessor.from_pretrained(str(path)), AutoTokenizer.from_pretrained(str(path))), info

        needs = "config.json, weights, preprocessor_config.json and tokenizer files"
        clip, processor, tokenizer = self._from_pretrained(path, "clip", ("CLIP", "CLIPModel"), "openai/clip-vit-base-patch16", needs, load)
        self._clip = clip.to(self.device).eval().requires_grad_(False)
        self._processor = processor
        self._tokenizer = tokenizer
        self._max_length = int(clip.config.text_config.max_position_embeddings)
        return CLIPVisionTower(self._clip.vision_model, self._clip.visual_projection).eval()

    def _arch_signature(self, path: Path) -> Optional[dict[str, Any]]:
        return clip_vision_signature(path)

    def _save_dense(self, directory: Path) -> None:
        """The whole ``CLIPModel`` (merged vision tower, the base's text tower) with its processor and tokenizer."""
        self._clip.save_pretrained(str(directory))
        self._processor.save_pretrained(str(directory))
        self._tokenizer.save_pretrained(str(directory))

    def _full_mapping(self, found: dict[str, tuple[int, ...]], where: str) -> dict[str, str]:
        """Vision-transformer keys under any prefix (vision_model., none ...); the projection is optional."""
        tower = {n[len("vision_model.") :]: tuple(t.shape) for n, t in self._base.items() if n.startswith("vision_model.")}
        buffers = {n[len("vision_model.") :] for n, _ in self._resident.named_buffers() if n.startswith("vision_model.")}
        mapping = match_state_keys(tower, found, where, self._hint, ignore=buffers | {PROJECTION, "logit_scale"})
        out = {"vision_model." + n: key for n, key in mapping.items()}
        if PROJECTION in found:
            expected = tuple(self._base[PROJECTION].shape)
            if tuple(found[PROJECTION]) != expected:
                raise ParamMismatchError(
                    f"{where}: {PROJECTION} has shape {tuple(found[PROJECTION])}, base has {expected}; {self._hint}"
                )
            out[PROJECTION] = PROJECTION
        return out  # a missing projection is the base's (the published vision checkpoints froze it)

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        chunks = []
        with torch.no_grad():
            for i in range(0, len(texts), _TEXT_BATCH):
                batch = self._tokenizer(
                    list(texts[i : i + _TEXT_BATCH]), padding=True, truncation=True, max_length=self._max_length, return_tensors="pt"
                ).to(self.device)
                pooled = self._clip.text_model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).pooler_output
                chunks.append(self._clip.text_projection(pooled).float())
        return torch.cat(chunks)

    def _preprocess(self, images: list[Any]) -> torch.Tensor:
        return self._processor(images=list(images), return_tensors="pt")["pixel_values"]

    def _wrap(self) -> ZeroShotImageModel:
        base_id = entry_id(self._base_loc)
        text_fp = hashlib.sha256(json.dumps(["clip-text", base_id, self.config.dtype]).encode()).hexdigest()
        pre_fp = hashlib.sha256(self._processor.to_json_string().encode()).hexdigest()
        return ZeroShotImageModel(
            vision=self._resident,
            encode_texts=self._encode_texts,
            preprocess=self._preprocess,
            logit_scale=float(self._clip.logit_scale.exp()),
            text_fingerprint=text_fp,
            preprocess_fingerprint=pre_fp,
            device=self.device,
        )


class CLIPFamily(ModelFamily):
    """CLIP dual encoders (``model_type`` clip): the vision tower is fine-tuned and merged, the text tower is the zero-shot head."""

    name = "clip"
    label = "CLIP"
    description = "CLIP (transformers CLIPModel): vision tower merged, text tower as the zero-shot head"
    reference = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"
    modelpool = "clip"
    taskpool = "clip_vision"
    default_taskpool = "clip_ta8"
    default_recipe = "clip_paper"
    presets = ("clip-vit-base-patch32", "clip-vit-base-patch16", "clip-vit-large-patch14")
    tensor_roles = TensorRoles("CLIP", (
        (r"(class_embedding|patch_embedding\.weight|position_embedding\.weight)$", "embedding"),
        (r"(visual|text)_projection\.weight$", "projection"),
        (r"(layer_?norm\d*|pre_layrnorm|post_layernorm)\.(weight|bias)$", "norm"),
        (r"\.bias$", "bias"),
        (r"\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)\.weight$", "matrix"),
    ))
