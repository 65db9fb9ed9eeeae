"""The dummy world's ground truth, shared by its model pool and task pool (plumbing tests only).

Task t is "classify x by argmax(W_t x + b_t)"; its teacher (W_t, b_t) = (W_0, b_0) + tau_t is
both the task's labeller (``fusionbench.taskpools.dummy``) and its fine-tuned model
(``fusionbench.modelpools.dummy``), so fine-tuned accuracy is 1.
"""

from __future__ import annotations

import zlib

import torch

from fusionbench.api.params import ParamDict

DUMMY_TASKS = ["alpha", "beta", "gamma", "delta"]
DIM, CLASSES = 16, 4  # input dimension, classes


def generator(*parts: object) -> torch.Generator:
    """A torch generator seeded by a stable hash of ``parts``."""
    return torch.Generator().manual_seed(zlib.crc32(repr(parts).encode()))


def teacher(task: str | None, seed: int) -> ParamDict:
    """theta_0 (task=None) or theta_t = theta_0 + tau_t of the dummy world."""
    g = generator("base", seed)
    params = ParamDict(weight=torch.randn(CLASSES, DIM, generator=g), bias=torch.zeros(CLASSES))
    if task is None:
        return params
    g = generator("task", task, seed)
    tau = ParamDict(weight=2.0 * torch.randn(CLASSES, DIM, generator=g), bias=0.5 * torch.randn(CLASSES, generator=g))
    return params + tau
