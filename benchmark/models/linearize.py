"""Linearised LoRA (L-LoRA) in closed form, and the ``torch.func.jvp`` reference.

Tang et al., "Parameter Efficient Multi-Task Model Fusion with Partial Linearization",
ICLR 2024, section 4: a LoRA layer ``y = W0 x + b + s B A x`` (``s = alpha / r``) is
replaced by its first-order Taylor expansion in the adapter parameters phi = (A, B)
around their initialisation phi_0 = (A0, B0)::

    y_lin = W0 x + b + s (B0 A x + B A0 x - B0 A0 x)

The closed form (:class:`LinearizedLoraLinear`) computes this with two small matmul
chains; :class:`LinearizedModel` computes the same first-order expansion of *any*
module with ``torch.func.jvp`` + ``functional_call`` (the paper's implementation, and the
engine of full-model linearisation, paper Fig. 3b). Tests prove both agree.

Because ``Delta W(phi) = s (B0 A + B A0 - B0 A0)`` is linear in phi, a merged L-LoRA model
folds exactly into dense weights (:func:`llora_delta`).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import torch
from torch import nn
from torch.func import functional_call, jvp
from torch.nn import functional as F
from torch.utils._pytree import tree_map

from fusionbench.api.errors import CheckpointError


def lora_delta(lora_A: torch.Tensor, lora_B: torch.Tensor, scaling: float) -> torch.Tensor:
    """Dense weight update ``s B A`` of a LoRA layer (Hu et al., ICLR 2022)."""
    return scaling * (lora_B @ lora_A)


def llora_delta(
    lora_A: torch.Tensor, lora_B: torch.Tensor, lora_A0: torch.Tensor, lora_B0: torch.Tensor, scaling: float
) -> torch.Tensor:
    """Dense weight update ``s (B0 A + B A0 - B0 A0)`` of a linearised LoRA layer (L-LoRA paper, sec. 4).

    ``y_lin(x) = (W0 + llora_delta) x + b`` exactly, so merged L-LoRA adapters fold into
    dense weights.
    """
    return scaling * (lora_B0 @ (lora_A - lora_A0) + lora_B @ lora_A0)


def _lora_linear_class() -> type:
    from peft.tuners.lora import Linear

    return Linear


def _single_adapter(layer: nn.Module) -> str:
    """The one active adapter of a peft LoRA layer; refuse what the closed form does not cover."""
    active = list(layer.active_adapters)
    if len(active) != 1:
        raise CheckpointError(f"L-LoRA needs exactly one active LoRA adapter per layer, found {active}; activate one with set_adapter")
    name = active[0]
    if name in getattr(layer, "lora_variant", {}) or getattr(layer, "use_dora", {}).get(name, False):
        raise CheckpointError(f"L-LoRA supports plain LoRA only; adapter {name!r} is a LoRA variant (e.g. DoRA)")
    if getattr(layer, "lora_bias", {}).get(name, False):
        raise CheckpointError(f"L-LoRA supports LoRA without bias on lora_B; adapter {name!r} has lora_bias=True")
    if layer.merged:
        raise CheckpointError("cannot linearise a LoRA layer whose adapter is merged into the base weight; unmerge it first")
    return name


class LinearizedLoraLinear(nn.Module):
    """Closed-form L-LoRA drop-in for one peft LoRA ``Linear`` layer.

    The wrapped layer stays reachable as ``.model`` (so trainable parameters are named
    ``<path>.model.lora_A.<adapter>.weight`` as in FusionBench's published wrapper);
    phi_0 = (A0, B0) is held in the buffers ``lora_A0`` / ``lora_B0``.
    """

    def __init__(
        self, layer: nn.Module, lora_A0: Optional[torch.Tensor] = None, lora_B0: Optional[torch.Tensor] = None
    ) -> None:
        super().__init__()
        if not isinstance(layer, _lora_linear_class()):
            raise TypeError(f"LinearizedLoraLinear wraps peft.tuners.lora.Linear layers, got {type(layer).__name__}")
        self.adapter = _single_adapter(layer)
        self.model = layer
        A, B = layer.lora_A[self.adapter].weight, layer.lora_B[self.adapter].weight
        A0 = A if lora_A0 is None else lora_A0
        B0 = B if lora_B0 is None else lora_B0
        if A0.shape != A.shape or B0.shape != B.shape:
            raise CheckpointError(
                f"L-LoRA init shapes {tuple(A0.shape)}, {tuple(B0.shape)} differ from the layer's "
                f"lora_A {tuple(A.shape)}, lora_B {tuple(B.shape)}"
            )
        self.register_buffer("lora_A0", A0.detach().clone().to(A.dtype))
        self.register_buffer("lora_B0", B0.detach().clone().to(B.dtype))

    @property
    def scaling(self) -> float:
        return float(self.model.scaling[self.adapter])

    @property
    def weight(self) -> torch.Tensor:
        """The frozen base weight, as peft's layer gives it: code around a ``Linear`` reads it (Flan-T5's gated
        feed-forward casts its input to ``wo.weight.dtype``)."""
        return self.model.weight

    def forward(self, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        layer = self.model
        result = layer.base_layer(x, *args, **kwargs)
        if layer.disable_adapters:
            return result
        A = layer.lora_A[self.adapter].weight
        B = layer.lora_B[self.adapter].weight
        h = layer.lora_dropout[self.adapter](x.to(A.dtype))
        a_x, a0_x = F.linear(h, A), F.linear(h, self.lora_A0)
        update = F.linear(a_x - a0_x, self.lora_B0) + F.linear(a0_x, B)
        return result + (self.scaling * update).to(result.dtype)

    def delta_weight(self) -> torch.Tensor:
        """``llora_delta`` at the layer's current phi, in the base weight's layout."""
        layer = self.model
        delta = llora_delta(
            layer.lora_A[self.adapter].weight, layer.lora_B[self.adapter].weight, self.lora_A0, self.lora_B0, self.scaling
        )
        return delta.T if layer.fan_in_fan_out else delta


def _replace(model: nn.Module, path: str, new: nn.Module) -> None:
    parent_name, _, child = path.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new)


def linearize_lora_(model: nn.Module, init: Optional[Mapping[str, torch.Tensor]] = None) -> list[str]:
    """Replace every peft LoRA ``Linear`` in ``model`` by a :class:`LinearizedLoraLinear`, in place.

    phi_0 is each layer's current (A, B) (call this right after ``get_peft_model``, i.e. at
    the initialisation), unless ``init`` maps ``"<layer path>.lora_A.weight"`` /
    ``"<layer path>.lora_B.weight"`` (peft's saved key layout, paths as in ``model``) to
    stored values. Returns the paths of the linearised layers.
    """
    linear = _lora_linear_class()
    paths = [name for name, module in model.named_modules() if isinstance(module, linear)]
    if not paths:
        raise CheckpointError("model has no peft LoRA Linear layer to linearise; wrap it with peft.get_peft_model first")
    for path in paths:
        layer = model.get_submodule(path)
        A0 = B0 = None
        if init is not None:
            keys = (f"{path}.lora_A.weight", f"{path}.lora_B.weight")
            missing = [k for k in keys if k not in init]
            if missing:
                raise CheckpointError(f"L-LoRA init has no tensor {missing[0]!r}; it must hold lora_A and lora_B of every LoRA layer")
            A0, B0 = init[keys[0]], init[keys[1]]
        _replace(model, path, LinearizedLoraLinear(layer, A0, B0))
    return paths


def unlinearize_lora_(model: nn.Module) -> list[str]:
    """Undo :func:`linearize_lora_`: put the wrapped peft layers back. Returns their paths."""
    paths = [name for name, module in model.named_modules() if isinstance(module, LinearizedLoraLinear)]
    for path in paths:
        _replace(model, path, model.get_submodule(path).model)
    return paths


def llora_state(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(phi, phi_0) of a linearised model, keyed in peft's saved layout ``<layer path>.lora_A.weight``."""
    phi: dict[str, torch.Tensor] = {}
    phi0: dict[str, torch.Tensor] = {}
    for path, module in model.named_modules():
        if isinstance(module, LinearizedLoraLinear):
            layer = module.model
            phi[f"{path}.lora_A.weight"] = layer.lora_A[module.adapter].weight.detach()
            phi[f"{path}.lora_B.weight"] = layer.lora_B[module.adapter].weight.detach()
            phi0[f"{path}.lora_A.weight"] = module.lora_A0
            phi0[f"{path}.lora_B.weight"] = module.lora_B0
    if not phi:
        raise CheckpointError("model has no linearised LoRA layer; call linearize_lora_ first")
    return phi, phi0


class LinearizedModel(nn.Module):
    """First-order Taylor expansion of any module in its parameters, by ``torch.func.jvp``.

    ``f_lin(x; theta) = f(x; theta_0) + J_theta f(x; theta_0) (theta - theta_0)`` over the
    parameters that require grad (or all of them with ``trainable_only=False``); theta_0 is
    their value at construction. Reference for :class:`LinearizedLoraLinear` (wrap a peft
    LoRA layer) and full-model linearisation (Ortiz-Jimenez et al., NeurIPS 2023; L-LoRA
    paper Fig. 3b).
    """

    def __init__(self, model: nn.Module, trainable_only: bool = True) -> None:
        super().__init__()
        self.model = model
        self._names = [n for n, p in model.named_parameters() if p.requires_grad or not trainable_only]
        if not self._names:
            raise ValueError("LinearizedModel found no parameters to linearise in; mark some as requires_grad")
        params = dict(model.named_parameters())
        self.params0 = nn.ParameterList([nn.Parameter(params[n].detach().clone(), requires_grad=False) for n in self._names])

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        params = dict(self.model.named_parameters())
        primals = tuple(p0 for p0 in self.params0)
        tangents = tuple(params[n] - p0 for n, p0 in zip(self._names, self.params0))

        def at(*values: torch.Tensor) -> Any:
            return functional_call(self.model, dict(zip(self._names, values)), args, kwargs)

        out, dout = jvp(at, primals, tangents)
        return tree_map(lambda a, b: a + b, out, dout)
