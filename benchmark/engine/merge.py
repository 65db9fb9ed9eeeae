"""The one evaluation path (merge, then evaluate) of ``run``, ``sweep`` and every executor, with a checked merge.

A method's ``merge`` is user code, so its failures and its output are checked here.

Whatever ``merge`` raises (other than a FusionBenchError, which already speaks to the user) becomes
a MethodError naming the method, the exception and where it was raised; what it returns must be
the pool's parameters: a ParamDict with the base's names, shapes and dtypes, every value finite.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Optional

import torch

from fusionbench.api.errors import FusionBenchError, MethodError, ParamMismatchError, raised_at
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool, TensorMerge
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool, TaskScore
from fusionbench.engine.memory_pool import ParamDictPool


def checked_merge(method: Method, pool: ModelPool, data: Optional[TaskPool] = None) -> ParamDict:
    """``method.merge(pool, data)``, its exceptions and its result checked (see the module docstring)."""
    label = f"method {method.name!r} ({type(method).__module__}.{type(method).__name__})"
    try:
        merged = method.merge(pool, data)
    except (FusionBenchError, KeyboardInterrupt):
        raise
    except (Exception, SystemExit) as exc:  # user code: a plugin may raise anything, or even exit
        raise MethodError(f"{label} failed: {type(exc).__name__}: {str(exc)[:300]} (raised at {raised_at(exc)})") from exc
    if not isinstance(merged, ParamDict):
        raise MethodError(f"{label} returned {type(merged).__name__}; merge() must return a ParamDict in the pool's parameter space")
    base = pool.base()
    try:
        base.check_compatible(merged)
    except ParamMismatchError as exc:
        raise MethodError(f"{label} returned parameters that do not match the pool's: {exc}") from None
    odd = [name for name in base if merged[name].dtype != base[name].dtype]
    if odd:
        raise MethodError(
            f"{label} returned {merged[odd[0]].dtype} for tensor {odd[0]!r} where the pool has {base[odd[0]].dtype} "
            f"({len(odd)} of {len(base)} tensors differ); cast the result with .to(base dtype)"
        )
    merged.assert_finite(f"parameters merged by {label}")
    return merged


def tensor_merge(method: Method, pool: ModelPool) -> TensorMerge:
    """``method``'s (checked) merge of one tensor, for streaming a ``tensorwise`` method over ``pool``'s checkpoints.

    The tensor's base and fine-tuned values form a one-tensor ParamDictPool of ``pool``'s tasks and mode, so the
    streamed result is the method's own in-memory result, tensor by tensor.
    """

    def merge_one(name: str, base: torch.Tensor, finetuned: list[torch.Tensor]) -> torch.Tensor:
        one = ParamDictPool(base={name: base}, finetuned={t: {name: f} for t, f in zip(pool.tasks, finetuned)}, mode=pool.mode, name=pool.config.name)
        return checked_merge(method, one)[name]

    return merge_one


@dataclass
class Evaluation:
    """The merged parameters, their scores on the pool's tasks, and what merging and evaluating cost."""

    merged: ParamDict
    scores: dict[str, TaskScore]
    merge_seconds: float
    eval_seconds: float


def merge_and_evaluate(method: Method, pool: ModelPool, taskpool: TaskPool, split: str) -> Evaluation:
    """Merge ``pool`` with ``method`` (checked) and evaluate the merged model on the pool's tasks."""
    start = time.perf_counter()
    merged = checked_merge(method, pool, taskpool if method.needs_data else None)
    merged_at = time.perf_counter()
    scores = taskpool.evaluate(pool.model(merged), pool.tasks, split)
    return Evaluation(merged, scores, merged_at - start, time.perf_counter() - merged_at)
