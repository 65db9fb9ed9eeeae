"""What the data-based methods that differentiate or probe the model (Fisher merging, RegMean,
AdaMerging) share; it registers nothing.

They read data only through the task pool's contract (``TaskPool.examples`` with the method's
``DataUse``) and run the pool's one resident model: ``pool.model(params)`` copies values into
it, and ``class_scores`` evaluates ``TaskPool.class_logits`` with the resident module's
parameters replaced by (differentiable) tensors through ``torch.func.functional_call``, so no
model is ever copied. That needs the pool's parameters to be the resident module's own
parameters, which holds for full pools; LoRA and L-LoRA pools fold their adapters into the
resident weights, so these methods refuse them.
"""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from typing import Any, Mapping

import torch
from torch import nn
from torch.func import functional_call

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import SPLITS, TaskPool
from fusionbench.methods.common import check_choice, load_inputs


def check_labelled_split(method: str, split: str) -> None:
    """A ConfigError unless ``split`` is a split whose labels a merge may read (train or validation)."""
    check_choice(method, "split", split, SPLITS)
    if split == "test":
        raise ConfigError(
            f"method {method!r}: split=test is not allowed: the method reads labels, and test labels are never read; "
            f"use split=train or validation"
        )


def full_pool_inputs(method: Method, pool: ModelPool, data: TaskPool | None, purpose: str) -> tuple[TaskPool, ParamDict, list[ParamDict]]:
    """(data, theta_0, [theta_t]) of a full ``pool`` (checked as ``load_inputs`` does) for a method that reads ``data`` for ``purpose``."""
    if data is None:
        raise ConfigError(f"method {method.name!r} needs a task pool {purpose}; pass taskpool=NAME")
    base, thetas = load_inputs(method, pool)
    if pool.mode != "full":
        raise ConfigError(
            f"method {method.name!r} needs the gradients or layer inputs of whole weights, but pool {pool.config.name!r} "
            f"has mode {pool.mode} (its parameters are adapters folded into the model); choose a pool of mode full"
        )
    return data, base, thetas


def parameter_module(method: Method, pool: ModelPool, model: Any, params: Mapping[str, torch.Tensor]) -> nn.Module:
    """The module, in the evaluated ``model``, whose parameters are named as the pool's ``params``."""
    candidates = [model] if isinstance(model, nn.Module) else []
    if is_dataclass(model):
        candidates += [getattr(model, f.name) for f in fields(model) if isinstance(getattr(model, f.name), nn.Module)]
    for module in candidates:
        if set(params) <= {name for name, _ in module.named_parameters()}:
            return module
    raise ConfigError(
        f"method {method.name!r} cannot find the module holding the parameters of pool {pool.config.name!r} in the model it "
        f"evaluates ({type(model).__name__}); it supports pools whose parameters are their model's (mode full)"
    )


class _Scores(nn.Module):
    """``data.class_logits(model, batch, task)`` as a module whose only child is the resident module."""

    def __init__(self, resident: nn.Module, data: TaskPool, model: Any, task: str) -> None:
        super().__init__()
        self.resident = resident
        self.call = (data, model, task)

    def forward(self, batch: Any) -> torch.Tensor:
        data, model, task = self.call
        return data.class_logits(model, batch, task)


def class_scores(
    data: TaskPool, model: Any, resident: nn.Module, params: Mapping[str, torch.Tensor], batch: Any, task: str
) -> torch.Tensor:
    """The task pool's class logits of ``batch`` with ``resident``'s parameters replaced by ``params`` (differentiable in them)."""
    scores = _Scores(resident, data, model, task)
    return functional_call(scores, {f"resident.{name}": value for name, value in params.items()}, (batch,))


def resident(method: Method, pool: ModelPool, params: ParamDict) -> tuple[Any, nn.Module]:
    """(the evaluated model holding ``params``, the module whose parameters they are)."""
    model = pool.model(params)
    return model, parameter_module(method, pool, model, params)
