"""Closed-form L-LoRA (fusionbench.models.linearize) against the torch.func.jvp reference and hand algebra."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import Linear as LoraLinear
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration

from fusionbench.api.errors import CheckpointError
from fusionbench.models.linearize import (
    LinearizedLoraLinear,
    LinearizedModel,
    linearize_lora_,
    llora_delta,
    llora_state,
    lora_delta,
    unlinearize_lora_,
)

IN, OUT, R = 24, 20, 4


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


def lora_layer(bias: bool, b0_zero: bool, seed: int = 0, dropout: float = 0.0) -> LoraLinear:
    """A peft LoRA Linear around a random nn.Linear; B0 = 0 (peft default) or random (init_lora_weights=False)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(IN, OUT, bias=bias))
    config = LoraConfig(r=R, lora_alpha=8, target_modules=["0"], lora_dropout=dropout, init_lora_weights=b0_zero)
    model = get_peft_model(net, config)
    layer = model.base_model.model[0]
    assert isinstance(layer, LoraLinear)
    assert bool((layer.lora_B["default"].weight == 0).all()) == b0_zero
    return layer


def move_phi_(layer: LoraLinear, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (layer.lora_A["default"].weight, layer.lora_B["default"].weight):
            p.add_(0.3 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("b0_zero", [True, False])
def test_closed_form_equals_jvp_reference(bias: bool, b0_zero: bool) -> None:
    layer = lora_layer(bias, b0_zero, dropout=0.1).eval()
    reference = LinearizedModel(layer)  # phi_0 = current (init) values
    A0 = layer.lora_A["default"].weight.detach().clone()
    B0 = layer.lora_B["default"].weight.detach().clone()
    closed = LinearizedLoraLinear(layer, A0, B0)
    move_phi_(layer, seed=1)
    x = torch.randn(5, 3, IN, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected = reference(x)
        got = closed(x)
    assert rel_err(got, expected) < 1e-5
    # and both equal the hand-written formula W0 x + b + s (B0 A x + B A0 x - B0 A0 x)
    W0, b = layer.base_layer.weight, layer.base_layer.bias
    A, B, s = layer.lora_A["default"].weight, layer.lora_B["default"].weight, layer.scaling["default"]
    by_hand = x @ W0.T + (b if bias else 0) + s * (x @ A.T @ B0.T + x @ A0.T @ B.T - x @ A0.T @ B0.T)
    assert rel_err(got.detach(), by_hand.detach()) < 1e-5


def test_closed_form_is_linear_in_phi_and_exact_at_init() -> None:
    layer = lora_layer(bias=True, b0_zero=False).eval()
    x = torch.randn(7, IN)
    with torch.no_grad():
        lora_at_init = layer(x)
    closed = LinearizedLoraLinear(layer)
    with torch.no_grad():
        assert rel_err(closed(x), lora_at_init) < 1e-6  # linearisation is exact at phi_0
        f0 = closed(x)
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        dA, dB = torch.randn_like(A), torch.randn_like(B)
        A += dA
        f1 = closed(x) - f0
        A -= dA
        B += dB
        f2 = closed(x) - f0
        A += 2 * dA
        B += dB  # phi_0 + 2 dA + 2 dB
        both = closed(x) - f0
    assert rel_err(both, 2 * f1 + 2 * f2) < 1e-5


def test_llora_delta_folds_exactly() -> None:
    layer = lora_layer(bias=True, b0_zero=False).eval()
    closed = LinearizedLoraLinear(layer)
    move_phi_(layer, seed=3)
    x = torch.randn(6, IN)
    W0, b = layer.base_layer.weight, layer.base_layer.bias
    with torch.no_grad():
        folded = x @ (W0 + closed.delta_weight()).T + b
        assert rel_err(folded, closed(x)) < 1e-5
        A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        assert torch.allclose(closed.delta_weight(), llora_delta(A, B, closed.lora_A0, closed.lora_B0, closed.scaling), atol=1e-7)
        assert torch.allclose(lora_delta(A, B, 2.0), 2.0 * B @ A)


def lora_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(IN, 16), nn.GELU(), nn.Linear(16, OUT))
    return get_peft_model(net, LoraConfig(r=R, lora_alpha=8, target_modules=["0", "2"], init_lora_weights=False))


def test_linearize_lora_matches_per_layer_jvp_wrappers_and_round_trips() -> None:
    """linearize_lora_ == FusionBench's recipe (each LoRA layer wrapped in a jvp linearisation)."""
    closed, reference = lora_net(0), lora_net(0)
    paths = linearize_lora_(closed)
    assert paths == ["base_model.model.0", "base_model.model.2"]
    for path in paths:  # the reference: per-layer jvp wrappers, phi_0 = init
        parent, _, child = path.rpartition(".")
        setattr(reference.get_submodule(parent), child, LinearizedModel(reference.get_submodule(path)))
    phi, phi0 = llora_state(closed)
    assert set(phi) == {f"{p}.lora_{ab}.weight" for p in paths for ab in "AB"} and phi.keys() == phi0.keys()
    g = torch.Generator().manual_seed(5)
    steps = {k: 0.2 * torch.randn(v.shape, generator=g) for k, v in phi.items()}
    for model in (closed, reference):
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_" in name and p.requires_grad:
                    path, ab = name.replace(".model.lora_", ".lora_").rsplit(".lora_", 1)
                    p.add_(steps[f"{path}.lora_{ab[0]}.weight"])
    x = torch.randn(4, IN)
    with torch.no_grad():
        assert rel_err(closed(x), reference(x)) < 1e-5
    unlinearize_lora_(closed)
    assert not any(isinstance(m, LinearizedLoraLinear) for m in closed.modules())
    assert sum(isinstance(m, LoraLinear) for m in closed.modules()) == 2


def test_linearized_layers_stand_in_where_a_model_reads_the_weight() -> None:
    """Flan-T5's gated feed-forward reads ``wo.weight.dtype``: every linear layer of a T5 block can be linearised."""
    config = T5Config(vocab_size=32, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=4, feed_forward_proj="gated-gelu")
    torch.manual_seed(0)
    model = get_peft_model(T5ForConditionalGeneration(config).eval(), LoraConfig(r=R, target_modules=["q", "v", "wi_0", "wi_1", "wo"]))
    ids = torch.randint(0, 32, (2, 5))
    with torch.no_grad():
        before = model(input_ids=ids, decoder_input_ids=ids).logits
    paths = linearize_lora_(model)
    wo = model.get_submodule(next(p for p in paths if p.endswith("wo")))
    assert wo.weight is wo.model.base_layer.weight
    with torch.no_grad():  # at phi_0 the linearised model is the LoRA model
        assert rel_err(model(input_ids=ids, decoder_input_ids=ids).logits, before) < 1e-6


def test_linearize_uses_stored_init_and_rejects_incomplete_init() -> None:
    layer_model = get_peft_model(nn.Sequential(nn.Linear(IN, OUT)), LoraConfig(r=R, target_modules=["0"]))
    key = "base_model.model.0"
    init = {f"{key}.lora_A.weight": torch.randn(R, IN), f"{key}.lora_B.weight": torch.randn(OUT, R)}
    linearize_lora_(layer_model, init=init)
    _, phi0 = llora_state(layer_model)
    assert torch.equal(phi0[f"{key}.lora_B.weight"], init[f"{key}.lora_B.weight"])
    other = get_peft_model(nn.Sequential(nn.Linear(IN, OUT)), LoraConfig(r=R, target_modules=["0"]))
    with pytest.raises(CheckpointError, match="lora_B"):
        linearize_lora_(other, init={f"{key}.lora_A.weight": torch.randn(R, IN)})
    with pytest.raises(CheckpointError, match="no peft LoRA Linear"):
        linearize_lora_(nn.Sequential(nn.Linear(2, 2)))


def test_jvp_reference_linearises_a_full_model() -> None:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    lin = LinearizedModel(net)
    x = torch.randn(5, 4)
    with torch.no_grad():
        f0 = net(x)
        assert torch.allclose(lin(x), f0, atol=1e-6)  # exact at theta_0
        eps = 1e-3
        direction = {n: torch.randn_like(p) for n, p in net.named_parameters()}
        for n, p in net.named_parameters():
            p.add_(eps * direction[n])
        first_order = lin(x) - f0
        true_change = net(x) - f0
    assert rel_err(first_order, true_change) < 1e-2  # the tangent model agrees to first order
