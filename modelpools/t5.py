"""Flan-T5 text-to-text models through transformers: full, LoRA and L-LoRA pools (type ``t5``).

The whole ``T5ForConditionalGeneration`` is the merged module (tied embeddings count once);
LoRA adapters wrap the whole model (peft keys
``base_model.model.encoder.block.<i>.layer.0.SelfAttention.q.lora_A.weight``), as in the
L-LoRA paper's Flan-T5 experiments (Tang et al., ICLR 2024; Chung et al., 2022).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from fusionbench.api.families import ModelFamily, TextToTextModel
from fusionbench.api.roles import TensorRoles
from fusionbench.modelpools.hf import TransformersModelPool
from fusionbench.modelpools.transformers_config import TransformersPoolConfig
from fusionbench.modelpools.streamed import load_weights
from fusionbench.models.checkpoints import entry_id

_ARCH_FIELDS = ("d_model", "d_ff", "d_kv", "num_heads", "num_layers", "num_decoder_layers", "vocab_size", "feed_forward_proj")


def t5_signature(path: Path) -> Optional[dict[str, Any]]:
    """Architecture fields from ``path``'s config.json (None without one)."""
    from transformers import AutoConfig

    if not (path.is_dir() and (path / "config.json").is_file()):
        return None
    config = AutoConfig.from_pretrained(str(path))
    return {"model_type": config.model_type, **{k: getattr(config, k, None) for k in _ARCH_FIELDS}}


class FlanT5ModelPool(TransformersModelPool):
    """Flan-T5 (transformers) fine-tuned fully, with LoRA or with L-LoRA."""

    name = "t5"
    description = "Flan-T5 text-to-text models (transformers): full / LoRA / L-LoRA fine-tuned"
    reference = "Tang et al., Parameter Efficient Multi-Task Model Fusion with Partial Linearization, ICLR 2024 (arXiv 2310.04742)"
    Config = TransformersPoolConfig
    offline_hint = "run offline with modelpool=mini_t5_{mode} (the embedded mini world)"
    adapter_prefix = ""

    def tensor_role(self, name: str, tensor: torch.Tensor) -> str:
        return T5Family.tensor_roles.role(name)

    def _load_base(self, path: Path) -> nn.Module:
        from transformers import AutoTokenizer, T5ForConditionalGeneration

        def load() -> tuple[Any, dict]:
            model, info = load_weights(T5ForConditionalGeneration, path, self._dtype, self.device)
            return (model, AutoTokenizer.from_pretrained(str(path))), info

        model, tokenizer = self._from_pretrained(path, "t5", ("T5", "T5"), "google/flan-t5-base", "config.json, weights and tokenizer files", load)
        self._tokenizer = tokenizer
        return model.to(self.device).eval()

    def _arch_signature(self, path: Path) -> Optional[dict[str, Any]]:
        return t5_signature(path)

    def _save_dense(self, directory: Path) -> None:
        self._resident.save_pretrained(str(directory))
        self._tokenizer.save_pretrained(str(directory))

    def _wrap(self) -> TextToTextModel:
        fingerprint = hashlib.sha256(json.dumps(["t5-tokenizer", entry_id(self._base_loc)]).encode()).hexdigest()
        return TextToTextModel(module=self._resident, tokenizer=self._tokenizer, tokenizer_fingerprint=fingerprint, device=self.device)


class T5Family(ModelFamily):
    """T5 / Flan-T5 seq2seq models (``model_type`` t5): the whole model is fine-tuned and merged."""

    name = "t5"
    label = "T5"
    description = "T5 / Flan-T5 (transformers T5ForConditionalGeneration), text-to-text"
    reference = "Chung et al., Scaling Instruction-Finetuned Language Models, 2022"
    modelpool = "t5"
    taskpool = "glue"
    default_taskpool = "glue8"
    default_recipe = "t5_paper"
    checkpoint_task_prefix = "glue-"
    presets = ("flan-t5-base", "flan-t5-large")
    tensor_roles = TensorRoles("T5", (
        (r"(^|\.)(shared|embed_tokens)\.weight$", "embedding"),
        (r"relative_attention_bias\.weight$", "position_bias"),
        (r"(^|\.)lm_head\.weight$", "head"),
        (r"layer_norm\.weight$", "norm"),
        (r"\.bias$", "bias"),
        (r"\.(q|k|v|o|wi|wi_0|wi_1|wo)\.weight$", "matrix"),
    ))
