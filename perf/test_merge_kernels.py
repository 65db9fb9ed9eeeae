"""Merge kernels at ViT-B/16 size with eight task vectors.

``merge-block``: every method on one ViT-B/16 encoder block (7.1M parameters: q, k, v, out
768x768, fc1 3072x768, fc2 768x3072, biases, layer norms); the vision tower is twelve
such blocks plus embeddings, so whole-tower cost is about twelve times this.
``merge-tower``: the element-wise methods (task arithmetic, TIES, DARE) on the whole
ViT-B/16 vision transformer (85.8M parameters); TIES's trim threshold is global over
each task vector, so it needs the whole tower.
"""

from __future__ import annotations

from typing import Any, Callable

import pytest
import torch
from bench_helpers import run, vit_b16_recipe

from fusionbench.api.params import ParamDict
from fusionbench.methods.cart import cart_merge
from fusionbench.methods.common import per_matrix_merge
from fusionbench.methods.dare import dare_merge
from fusionbench.methods.iso_c import iso_c_matrix
from fusionbench.methods.task_arithmetic import task_arithmetic_merge
from fusionbench.methods.ties import ties_merge
from fusionbench.methods.tsv import tsv_matrix
from fusionbench.profiling.workload import build_model

TASKS = 8


def vectors(prefix: str) -> tuple[ParamDict, list[ParamDict]]:
    """A random base (std 0.02) and eight task vectors (std 1e-3) with the ViT-B/16 tower's shapes under ``prefix``."""
    _, root = build_model(vit_b16_recipe(), "meta", 0)
    shapes = {name: p.shape for name, p in root.named_parameters() if name.startswith(prefix)}
    g = torch.Generator().manual_seed(0)
    base = ParamDict({name: 0.02 * torch.randn(shape, generator=g) for name, shape in shapes.items()})
    return base, [ParamDict({n: 1e-3 * torch.randn(s, generator=g) for n, s in shapes.items()}) for _ in range(TASKS)]


@pytest.fixture(scope="module")
def block() -> tuple[ParamDict, list[ParamDict]]:
    return vectors("encoder.layers.0.")


@pytest.fixture(scope="module")
def tower() -> tuple[ParamDict, list[ParamDict]]:
    return vectors("")


MergeFn = Callable[[ParamDict, list[ParamDict]], ParamDict]
METHODS: dict[str, MergeFn] = {
    "task_arithmetic": lambda base, taus: task_arithmetic_merge(base, taus, 0.3),
    "ties": lambda base, taus: ties_merge(base, taus, k=0.2, scaling_factor=1.0),
    "dare": lambda base, taus: dare_merge(base, taus, p=0.5, seed=0),
    "cart": lambda base, taus: cart_merge([base + tau for tau in taus], rho=0.12, scaling_factor=2.0),
    "tsv": lambda base, taus: per_matrix_merge(base, taus, 1.0, tsv_matrix),
    "iso_c": lambda base, taus: per_matrix_merge(base, taus, 1.4, iso_c_matrix),
}


@pytest.mark.benchmark(group="merge-block: one ViT-B/16 block, 8 task vectors")
@pytest.mark.parametrize("method", list(METHODS))
def test_merge_one_block(benchmark: Any, block: tuple[ParamDict, list[ParamDict]], method: str) -> None:
    base, taus = block
    run(benchmark, lambda: METHODS[method](base, taus), rounds=3, warmup=1)


@pytest.mark.benchmark(group="merge-tower: ViT-B/16 vision transformer, 8 task vectors")
@pytest.mark.parametrize("method", ["task_arithmetic", "ties", "dare"])
def test_merge_whole_tower(benchmark: Any, tower: tuple[ParamDict, list[ParamDict]], method: str) -> None:
    base, taus = tower
    run(benchmark, lambda: METHODS[method](base, taus), rounds=2, warmup=0)
