"""Tensor roles: what each tensor of a pool's parameter space is, declared rather than guessed.

A model family (or a pool implementation with its own naming, such as open_clip) declares its
roles as name patterns; methods ask the pool (``ModelPool.tensor_role``) instead of guessing from
names, and a tensor that no pattern describes is an error, never a silent average. Roles:
``matrix`` (a linear layer's weight, a LoRA factor, a dense LoRA delta), ``embedding`` (token,
position and class embeddings, patch convolutions), ``projection`` (a dual encoder's output
projection), ``head`` (an output layer over the vocabulary), ``position_bias`` (T5's relative
attention bias table), ``norm``, ``bias``, and ``other`` (only from the name-based guess).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from fusionbench.api.errors import CheckpointError

ROLES = ("matrix", "embedding", "projection", "head", "position_bias", "norm", "bias", "other")
ADAPTER_PATTERNS = ((r"\.lora_[AB](\.|$)", "matrix"), (r"\.delta_weight$", "matrix"))  # LoRA factors and per-layer deltas, any family
NON_MATRIX_MARKERS = ("embed", "shared.weight", "_projection")  # the name-based guess for pools that declare no roles


@dataclass(frozen=True)
class TensorRoles:
    """A family's roles: ``(regex searched in the tensor name, role)`` pairs, the first match wins."""

    family: str
    patterns: tuple[tuple[str, str], ...]

    def role(self, name: str) -> str:
        """The role of ``name``; a CheckpointError when no pattern describes it."""
        for pattern, role in (*ADAPTER_PATTERNS, *self.patterns):
            if re.search(pattern, name):
                return role
        raise CheckpointError(
            f"tensor {name!r} is not described by the {self.family} family's tensor roles, so no method can tell "
            f"whether it is a weight matrix; this checkpoint has parameters the family does not know (another "
            f"architecture?): use a pool for that architecture, or add a pattern to the family's tensor_roles"
        )


def guessed_role(name: str, tensor: torch.Tensor) -> str:
    """The role of a tensor of a pool that declares none (plugins, the dummy world), guessed from its name:
    a 2-D tensor whose name has none of NON_MATRIX_MARKERS is a ``matrix``."""
    lowered = name.lower()
    if tensor.dim() == 2 and not any(marker in lowered for marker in NON_MATRIX_MARKERS):
        return "matrix"
    if "_projection" in lowered:
        return "projection"
    return "embedding" if "embed" in lowered or "shared.weight" in lowered else "other"
