"""Tensor roles declared by the model families, and the SVD-based methods asking the pool for them."""

from __future__ import annotations

import re

import pytest
import torch
from method_helpers import dummy_pools

from fusionbench.api.errors import CheckpointError
from fusionbench.api.roles import TensorRoles
from fusionbench.methods.common import factorised, is_weight_matrix
from fusionbench.methods.tsv import Tsv
from fusionbench.modelpools.clip import CLIPFamily
from fusionbench.modelpools.dummy import DummyModelPool
from fusionbench.modelpools.open_clip_pool import OPEN_CLIP_ROLES
from fusionbench.modelpools.t5 import T5Family
from fusionbench.models.presets import build_preset


def _named(module: torch.nn.Module, prefix: str = "") -> dict[str, torch.Tensor]:
    return {prefix + name: p for name, p in module.named_parameters()}


def test_clip_and_t5_roles_describe_every_tensor_and_factorise_what_the_name_rule_did() -> None:
    clip = build_preset("tiny-clip")
    spaces = {
        CLIPFamily: {**_named(clip.vision_model, "vision_model."), "visual_projection.weight": clip.visual_projection.weight},
        T5Family: _named(build_preset("tiny-t5")),
    }
    for family, tensors in spaces.items():
        roles = {name: family.tensor_roles.role(name) for name in tensors}
        assert set(roles.values()) <= {"matrix", "embedding", "projection", "head", "position_bias", "norm", "bias"}
        by_roles = {n for n, t in tensors.items() if t.dim() == 2 and roles[n] not in ("embedding", "projection")}
        assert by_roles == {n for n, t in tensors.items() if is_weight_matrix(n, t)}  # behaviour preserved for these pools
    assert CLIPFamily.tensor_roles.role("vision_model.embeddings.position_embedding.weight") == "embedding"
    assert CLIPFamily.tensor_roles.role("base_model.model.encoder.layers.0.self_attn.q_proj.lora_A.weight") == "matrix"
    assert T5Family.tensor_roles.role("encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight") == "position_bias"
    assert T5Family.tensor_roles.role("encoder.block.0.layer.0.SelfAttention.q.lora_B.default.weight") == "matrix"


def test_open_clip_roles_average_the_output_projection() -> None:
    open_clip = pytest.importorskip("open_clip")
    visual = open_clip.create_model("ViT-B-32").visual
    roles = {name: OPEN_CLIP_ROLES.role(name) for name, _ in visual.named_parameters()}
    assert roles["proj"] == "projection" and roles["positional_embedding"] == "embedding"
    assert {re.sub(r"\.\d+\.", ".N.", n) for n, r in roles.items() if r == "matrix"} == {
        f"transformer.resblocks.N.{p}" for p in ("attn.in_proj_weight", "attn.out_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
    }


def test_an_undescribed_tensor_is_an_error_naming_the_family() -> None:
    with pytest.raises(CheckpointError, match=r"tensor 'encoder.layers.0.gate.weight' is not described by the CLIP family's tensor roles"):
        CLIPFamily.tensor_roles.role("encoder.layers.0.gate.weight")


class _WeightsOnly(DummyModelPool):
    """A dummy pool whose (toy) family describes its weight but not its bias."""

    roles = TensorRoles("toy", ((r"^weight$", "matrix"),))

    def tensor_role(self, name: str, tensor: torch.Tensor) -> str:
        return self.roles.role(name)


def test_methods_ask_the_pool_and_refuse_what_it_does_not_describe() -> None:
    pool, _ = dummy_pools()
    pick = factorised(pool)
    assert pick("weight", torch.zeros(4, 16)) and not pick("bias", torch.zeros(4))
    strict = _WeightsOnly(pool.config)
    with pytest.raises(CheckpointError, match="tensor 'bias' is not described by the toy family"):
        Tsv().merge(strict)
