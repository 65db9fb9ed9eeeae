"""What a model pool's ``model(params)`` hands to a task pool, per model family.

The pool owns the weights, the tokenizer and the image processor; the task pool owns the
data and the metric. These two small interfaces are the whole contract between them, so
any CLIP-like pool (transformers, open_clip, the mini world) works with the vision task
pool, and any seq2seq pool with the text task pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import torch
from torch import nn

from fusionbench.api.roles import TensorRoles


@dataclass
class ZeroShotImageModel:
    """A CLIP-style dual encoder ready for zero-shot classification.

    ``vision`` maps pixel values (B, 3, H, W) to projected image embeddings (B, D) and is the
    part that model pools merge; ``encode_texts`` maps strings to projected text embeddings
    (N, D). Embeddings are *not* normalised; the task pool normalises them.
    """

    vision: nn.Module
    encode_texts: Callable[[list[str]], torch.Tensor]
    preprocess: Callable[[list[Any]], torch.Tensor]  # PIL images -> pixel values, the model's own processor
    logit_scale: float
    text_fingerprint: str  # changes whenever encode_texts would give other embeddings
    preprocess_fingerprint: str  # changes whenever preprocess would give other pixels
    device: str = "cpu"


@dataclass
class TextToTextModel:
    """A seq2seq model (e.g. T5ForConditionalGeneration) with its tokenizer."""

    module: nn.Module  # has .generate(input_ids=..., attention_mask=..., max_new_tokens=...) and a seq2seq loss
    tokenizer: Any  # a transformers tokenizer
    tokenizer_fingerprint: str  # changes whenever tokenisation would differ
    device: str = "cpu"


class ModelFamily:
    """A model family (CLIP, T5, ...): what fine-tuning and profiling need to know of it.

    Declared next to the model pool that loads the family and registered (``FAMILIES``) under
    its ``name``, the ``model_type`` of the family's ``config.json``; a new family is a new
    subclass, with no edit to fine-tuning or profiling.
    """

    name: ClassVar[str]  # config.json model_type
    label: ClassVar[str]  # how messages name it, e.g. "CLIP"
    description: ClassVar[str]
    reference: ClassVar[str] = ""
    modelpool: ClassVar[str]  # registered model pool type that loads the family
    taskpool: ClassVar[str]  # registered task pool type that evaluates (and fine-tunes) it
    default_taskpool: ClassVar[str]  # shipped task pool option that fine-tuning uses by default
    default_recipe: ClassVar[str]  # the paper's fine-tuning recipe for the family
    checkpoint_task_prefix: ClassVar[str] = ""  # published checkpoints' task prefix (Flan-T5's "glue-")
    presets: ClassVar[tuple[str, ...]] = ()  # the family's models as architecture presets (canonical names: fusionbench.models.names)
    tensor_roles: ClassVar[TensorRoles]  # what each tensor of its pools' parameter spaces is
