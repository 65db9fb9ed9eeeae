"""Turn a composed config into the resident objects of an evaluation: device, pool, task pool, method.

What a config ``requires`` is built first (``fusionbench.engine.prepare``), then the pools
are constructed and checked against each other, so an incompatible pair fails before any
evaluation.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig, OmegaConf

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.plugins import METHODS, MODELPOOLS, TASKPOOLS
from fusionbench.api.taskpool import TaskPool
from fusionbench.engine.prepare import prepare


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; an unavailable or unknown device is a ConfigError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no CUDA device is available; use device=cpu or device=auto")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device={device!r} is not valid; choose auto, cpu, cuda or cuda:N")
    return device


def build(cfg: DictConfig, device: str) -> tuple[ModelPool, TaskPool, Method]:
    """Instantiate the pool, task pool and method a composed config names, after building what they require."""
    prepare(cfg.modelpool.requires)
    prepare(cfg.taskpool.requires)
    pool = MODELPOOLS.get(cfg.modelpool.type)(cfg.modelpool, device=device)
    taskpool = TASKPOOLS.get(cfg.taskpool.type)(cfg.taskpool, device=device)
    method_cls = METHODS.get(cfg.method.name)
    values = {k: v for k, v in OmegaConf.to_container(cfg.method, resolve=True).items() if k != "name"}  # type: ignore[union-attr]
    method = method_cls(method_cls.Params(**values))
    missing = [t for t in pool.tasks if t not in taskpool.tasks]
    if missing:
        raise ConfigError(
            f"task pool {cfg.taskpool.name!r} cannot evaluate pool task {missing[0]!r}; "
            f"pick a task pool with the pool's tasks ({', '.join(pool.tasks)})"
        )
    return pool, taskpool, method
