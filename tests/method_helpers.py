"""Small in-memory model pools of random ParamDicts for the fusion-method tests."""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from fusionbench.api.modelpool import ModelPool, ModelPoolConfig
from fusionbench.api.params import ParamDict
from fusionbench.modelpools.dummy import DummyModelPool, DummyModelPoolConfig
from fusionbench.taskpools.dummy import DummyTaskPool, DummyTaskPoolConfig

# Two linear layers, their biases and an embedding-like 2-D tensor (not a weight matrix).
SHAPES: dict[str, tuple[int, ...]] = {
    "layers.0.weight": (8, 6),
    "layers.0.bias": (8,),
    "layers.1.weight": (12, 10),
    "layers.1.bias": (12,),
    "embeddings.position_embedding.weight": (5, 4),
}
MATRICES = ("layers.0.weight", "layers.1.weight")


class StaticPool(ModelPool):
    """A pool serving given ParamDicts; ``model`` hands the parameters back (nothing is evaluated)."""

    name = "static"
    description = "in-memory ParamDicts for method tests"

    def __init__(self, base: ParamDict, finetuned: Mapping[str, ParamDict], mode: str = "full") -> None:
        self._base = base
        self._finetuned = dict(finetuned)
        self._mode = mode
        super().__init__(ModelPoolConfig(type="static", name="static"))

    def all_tasks(self) -> list[str]:
        return list(self._finetuned)

    @property
    def mode(self) -> str:
        return self._mode

    def base(self) -> ParamDict:
        return self._base

    def finetuned(self, task: str) -> ParamDict:
        return self._finetuned[task]

    def model(self, params: ParamDict) -> ParamDict:
        return params

    def identity(self) -> dict[str, Any]:
        return {"type": self.name, "tasks": self.tasks}


def random_params(
    seed: int, shapes: Mapping[str, tuple[int, ...]] = SHAPES, dtype: torch.dtype = torch.float64, scale: float = 1.0
) -> ParamDict:
    """A ParamDict of standard-normal tensors times ``scale``, reproducible per seed."""
    g = torch.Generator().manual_seed(seed)
    return ParamDict({k: (scale * torch.randn(s, generator=g, dtype=torch.float64)).to(dtype) for k, s in shapes.items()})


def random_pool(
    tasks: int, seed: int = 0, shapes: Mapping[str, tuple[int, ...]] = SHAPES, dtype: torch.dtype = torch.float64
) -> StaticPool:
    """theta_0 random; theta_t = theta_0 + tau_t with tau_t random, for task names t0, t1, ..."""
    base = random_params(seed, shapes, dtype)
    finetuned = {f"t{i}": base + random_params(1000 + 17 * seed + i, shapes, dtype, scale=0.5) for i in range(tasks)}
    return StaticPool(base, finetuned)


def pool_from_vectors(base: ParamDict, vectors: list[ParamDict]) -> StaticPool:
    """The pool whose task vectors are exactly ``vectors`` (theta_t = theta_0 + tau_t)."""
    return StaticPool(base, {f"t{i}": base + tau for i, tau in enumerate(vectors)})


def dummy_pools() -> tuple[DummyModelPool, DummyTaskPool]:
    """The dummy world's model pool (4 linear classifiers) and its synthetic task pool."""
    from omegaconf import OmegaConf

    pool_cfg = OmegaConf.structured(DummyModelPoolConfig(type="dummy", name="dummy"))
    task_cfg = OmegaConf.structured(DummyTaskPoolConfig(type="dummy", name="dummy"))
    return DummyModelPool(pool_cfg), DummyTaskPool(task_cfg)


def np_vectors(pool: ModelPool) -> tuple[dict[str, np.ndarray], list[dict[str, np.ndarray]]]:
    """The pool's base and task vectors as numpy arrays, for hand computations."""
    base = {k: v.numpy() for k, v in pool.base().items()}
    return base, [{k: pool.finetuned(t)[k].numpy() - base[k] for k in base} for t in pool.tasks]


def assert_params_close(actual: ParamDict, expected: dict[str, np.ndarray], atol: float = 1e-9) -> None:
    """``actual`` holds the names of ``expected`` with values within ``atol`` (float64 comparison)."""
    assert set(actual) == set(expected)
    for k, v in expected.items():
        np.testing.assert_allclose(actual[k].double().numpy(), v, atol=atol, rtol=1e-7, err_msg=k)
