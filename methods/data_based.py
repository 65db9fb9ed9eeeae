"""What the data-based methods that differentiate or probe the model (Fisher merging, RegMean,
AdaMerging) share; it registers nothing.

They read data only through the task pool's contract (``TaskPool.examples`` with the method's
``DataUse``) and run the pool's one resident model: ``pool.model(params)`` copies values into
it, and ``class_scores`` evaluates ``TaskPool.class_logits`` with the resident module's
parameters replaced by (differentiable) tensors through ``torch.func.functional_call``, so no
model is ever copied. Those tensors are ``pool.module_parameters(params)``: a full pool's own
parameters, or the adapted layers' folded weights ``W0 + Delta W(phi)`` of a LoRA / L-LoRA pool,
so gradients reach the pool's parameters (the adapters, or the dense updates with
``merge_space=delta``) whatever the mode.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import fields, is_dataclass
from typing import Any, Callable, Iterable, Iterator, Mapping, TypeVar

import torch
from torch import nn
from torch.utils._pytree import tree_leaves
from torch.func import functional_call

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import SPLITS, TaskPool
from fusionbench.methods.common import check_choice, load_inputs

T = TypeVar("T")


def check_labelled_split(method: str, split: str) -> None:
    """A ConfigError unless ``split`` is a split whose labels a merge may read (train or validation)."""
    check_choice(method, "split", split, SPLITS)
    if split == "test":
        raise ConfigError(
            f"method {method!r}: split=test is not allowed: the method reads labels, and test labels are never read; "
            f"use split=train or validation"
        )


def pool_inputs(method: Method, pool: ModelPool, data: TaskPool | None, purpose: str) -> tuple[TaskPool, ParamDict, list[ParamDict]]:
    """(data, theta_0, [theta_t]) of ``pool`` (checked as ``load_inputs`` does) for a method that reads ``data`` for ``purpose``."""
    if data is None:
        raise ConfigError(f"method {method.name!r} needs a task pool {purpose}; pass taskpool=NAME")
    base, thetas = load_inputs(method, pool)
    return data, base, thetas


def per_task(pool: ModelPool, data: TaskPool, key: tuple[Any, ...], compute: Callable[[], T]) -> T:
    """``compute()`` of a quantity that depends only on one task's fixed weights and ``data`` (named by ``key``), or the
    value it gave before where ``pool`` keeps such quantities across merges (a sweep worker's pool; ``fusionbench.api.derived``)."""
    if pool.derived is None:
        return compute()
    return pool.derived.get((data, *key), compute)  # a task pool hashes by identity


def parameter_module(method: Method, pool: ModelPool, model: Any, names: Iterable[str]) -> nn.Module:
    """The module, in the evaluated ``model``, that has parameters of every one of ``names``."""
    candidates = [model] if isinstance(model, nn.Module) else []
    if is_dataclass(model):
        candidates += [getattr(model, f.name) for f in fields(model) if isinstance(getattr(model, f.name), nn.Module)]
    for module in candidates:
        if set(names) <= {name for name, _ in module.named_parameters()}:
            return module
    raise ConfigError(
        f"method {method.name!r} cannot find the module holding the parameters of pool {pool.config.name!r} in the model it "
        f"evaluates ({type(model).__name__}); the pool's module_parameters must name that module's parameters"
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


_PLAIN = (type(None), bool, int, float, str)  # non-tensor inputs a memoized forward keys by value
REUSE_BUDGET = 1 << 30  # bytes of outputs ``constant_outputs_reused`` keeps; beyond it, outputs are recomputed


def _memoized(forward: Callable[..., Any], budget: list[int]) -> Callable[..., Any]:
    """``forward`` that returns, for inputs it has seen (the same tensor objects, none requiring grad), the output it
    gave them, keeping new outputs while ``budget[0]`` bytes remain."""
    seen: dict[tuple[Any, ...], tuple[Any, Any]] = {}  # key -> (the inputs, kept alive so their ids stay theirs; the output)

    def call(*args: Any, **kwargs: Any) -> Any:
        inputs = list(args) + [kwargs[k] for k in sorted(kwargs)]
        if any(x.requires_grad if isinstance(x, torch.Tensor) else not isinstance(x, _PLAIN) for x in inputs):
            return forward(*args, **kwargs)
        key = tuple(id(x) if isinstance(x, torch.Tensor) else repr(x) for x in inputs) + tuple(sorted(kwargs))
        if key in seen:
            return seen[key][1]
        output = forward(*args, **kwargs)
        size = sum(t.nbytes for t in tree_leaves(output) if isinstance(t, torch.Tensor))
        if size <= budget[0]:
            budget[0] -= size
            seen[key] = (inputs, output)
        return output

    return call


@contextmanager
def constant_outputs_reused(module: nn.Module, moving: set[str], budget: int = REUSE_BUDGET) -> Iterator[None]:
    """Within the block, each largest submodule of ``module`` that holds parameters but none named in ``moving``
    computes its output once per input (the same tensor objects; inputs that require grad are always recomputed),
    up to ``budget`` bytes of kept outputs.

    For objectives evaluated many times on fixed batches with only the ``moving`` parameters changing: a frozen
    prefix of the network (fine-tuning left its embeddings and first blocks untouched) then runs once per batch.
    Exact as long as the batches' tensors are not modified in place and the other parameters keep their values.
    """
    patched: dict[int, nn.Module] = {}  # a shared (tied) submodule is patched once
    left = [budget]
    moved = {id(p) for name, p in module.named_parameters() if name in moving}  # tied parameters are one object

    def visit(node: nn.Module) -> None:
        for child in node.children():
            held = {id(p) for p in child.parameters()}
            if held and not held & moved:
                if id(child) not in patched:
                    child.forward = _memoized(child.forward, left)  # type: ignore[method-assign]
                    patched[id(child)] = child
            elif held:
                visit(child)

    visit(module)
    try:
        yield
    finally:
        for child in patched.values():
            del child.forward


def resident(method: Method, pool: ModelPool, params: ParamDict) -> tuple[Any, nn.Module]:
    """(the evaluated model holding ``params``, its module whose parameters ``pool.module_parameters`` names)."""
    model = pool.model(params)
    return model, parameter_module(method, pool, model, pool.module_parameters(params))
