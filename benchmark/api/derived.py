"""Per-task quantities a data-based method derives from a pool's fixed weights and a task pool's data.

Fisher merging's diagonal Fishers and RegMean's Gram matrices depend on one task's fine-tuned
model and examples only, not on which other tasks are merged or with which coefficients. A
sweep merges every task in many subsets and grid points with the pool and task pool fixed, so
its workers give their resident pool a ``DerivedCache``: each such quantity is computed once
per worker and reused by the later jobs (the same values: the computation is deterministic).
A pool outside a sweep has none, and every merge computes its own.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, TypeVar

import torch
from torch.utils._pytree import tree_leaves

T = TypeVar("T")
DERIVED_BUDGET = 2 << 30  # bytes of tensors a DerivedCache keeps; beyond it, values are recomputed


class DerivedCache:
    """Values by key, computed on first use and kept while their tensors fit in ``budget`` bytes."""

    def __init__(self, budget: int = DERIVED_BUDGET) -> None:
        self.left = budget
        self.computed = 0  # how many values were computed, kept or not
        self._kept: dict[Hashable, Any] = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()`` the first time ``key`` is asked for, the kept value afterwards."""
        if key in self._kept:
            return self._kept[key]  # type: ignore[no-any-return]
        value = compute()
        self.computed += 1
        size = sum(t.nbytes for t in tree_leaves(value) if isinstance(t, torch.Tensor))
        if size <= self.left:
            self.left -= size
            self._kept[key] = value
        return value
