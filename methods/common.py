"""Helpers shared by the built-in fusion methods: loading checked task vectors, choice
validation, and which tensors the SVD-based methods (CART, TSV, Iso-C, Iso-CTS) factorise.

Two rules (``FACTORISE``), chosen by a method parameter:
- ``all_2d``: every 2-D tensor is factorised, including position embeddings and projections
  (the official TSV and Iso-C / Iso-CTS code; the default of those methods);
- ``weights``: the 2-D tensors whose role (declared by the pool's model family,
  ``ModelPool.tensor_role``) is neither ``embedding`` nor ``projection``: attention and MLP
  matrices, LoRA's ``lora_A`` / ``lora_B`` factors, the dense per-layer deltas of delta-space
  pools, T5's output head and relative attention bias (CART's rule; FusionBench's first
  version of the others).
Every other tensor takes the mean task vector. Either way every tensor's role is asked, so a
tensor the family does not describe is refused. The pure tensor functions, called without a
pool, guess roles from names (``fusionbench.api.roles.guessed_role``) under ``weights``.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

from fusionbench.api.errors import ConfigError, ParamMismatchError, choices_text, did_you_mean
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.roles import guessed_role
from fusionbench.methods.linalg import naming

MatrixFn = Callable[[Sequence[torch.Tensor]], torch.Tensor]
IsMatrix = Callable[[str, torch.Tensor], bool]  # (name, tensor) -> factorise it?
AVERAGED_ROLES = ("embedding", "projection")  # averaged, not factorised, under the rule "weights"
FACTORISE = ("all_2d", "weights")
FACTORISE_HELP = "tensors factorised: all_2d (every 2-D tensor, official code) or weights (2-D, not embeddings / projections)"


def check_choice(method: str, name: str, value: str, choices: Sequence[str]) -> None:
    """Raise ConfigError unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(
            f"method {method!r}: {name}={value!r} is not valid.{did_you_mean(str(value), choices)} "
            f"Choose one of: {choices_text(choices)}"
        )


def load_finetuned(method: Method, pool: ModelPool, finite: bool = True) -> list[ParamDict]:
    """theta_t for every task of the pool, checked for task count, matching keys and (``finite``) finiteness."""
    method.check_pool(pool)
    thetas = []
    for task in pool.tasks:
        theta = ParamDict(pool.finetuned(task))
        if finite:
            theta.assert_finite(f"fine-tuned parameters of task {task!r}")
        if thetas:
            try:
                thetas[0].check_compatible(theta)
            except ParamMismatchError as exc:
                raise ParamMismatchError(f"task {task!r} does not match task {pool.tasks[0]!r}: {exc}") from None
        thetas.append(theta)
    return thetas


def load_inputs(method: Method, pool: ModelPool, finite: bool = True) -> tuple[ParamDict, list[ParamDict]]:
    """(theta_0, [theta_t per task]), checked like :func:`load_finetuned`.

    The element-wise methods pass ``finite=False`` and check their output instead
    (``fusionbench.methods.elementwise.finite_or_blame``).
    """
    thetas = load_finetuned(method, pool, finite)
    base = ParamDict(pool.base())
    if finite:
        base.assert_finite("base parameters")
    try:
        base.check_compatible(thetas[0])
    except ParamMismatchError as exc:
        raise ParamMismatchError(f"the fine-tuned parameters do not match the base: {exc}") from None
    return base, thetas


def load_task_vectors(method: Method, pool: ModelPool) -> tuple[ParamDict, list[ParamDict]]:
    """(theta_0, [tau_t = theta_t - theta_0 per task]), checked like :func:`load_finetuned`."""
    base, thetas = load_inputs(method, pool)
    return base, [theta - base for theta in thetas]


def is_weight_matrix(name: str, tensor: torch.Tensor) -> bool:
    """Without a pool: whether a tensor is factorised, its role guessed from its name (see the module docstring)."""
    return tensor.dim() == 2 and guessed_role(name, tensor) not in AVERAGED_ROLES


def factorised(pool: ModelPool, rule: str = "all_2d") -> IsMatrix:
    """Whether the SVD-based methods factorise a tensor of ``pool`` under ``rule`` (one of FACTORISE)."""
    averaged = AVERAGED_ROLES if rule == "weights" else ()
    return lambda name, tensor: pool.tensor_role(name, tensor) not in averaged and tensor.dim() == 2  # every tensor asked: none unknown


def mean_vector(vectors: Sequence[torch.Tensor]) -> torch.Tensor:
    """(1/T) sum_t tau_t of one tensor."""
    return torch.stack(list(vectors)).mean(dim=0)


def per_matrix_merge(
    base: ParamDict, vectors: Sequence[ParamDict], scaling_factor: float, matrix_fn: MatrixFn, is_matrix: IsMatrix = is_weight_matrix
) -> ParamDict:
    """theta_0 + alpha * merged, merged = ``matrix_fn(taus)`` for the tensors ``is_matrix`` picks, the mean tau_t elsewhere."""
    out = ParamDict()
    for name, tensor in base.items():
        taus = [tau[name] for tau in vectors]
        with naming(name):
            merged = matrix_fn(taus) if is_matrix(name, tensor) else mean_vector(taus)
        out[name] = tensor + scaling_factor * merged
    return out
