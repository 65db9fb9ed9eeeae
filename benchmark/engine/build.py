"""Turn a composed config into the resident objects of an evaluation: device, pool, task pool, method.

What a config ``requires`` is built first (``fusionbench.engine.prepare``), then the pools
are constructed and checked against each other, so an incompatible pair fails before any
evaluation.
"""

from __future__ import annotations

from typing import Optional

import torch
from omegaconf import DictConfig, OmegaConf

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.plugins import METHODS, MODELPOOLS, TASKPOOLS
from fusionbench.api.taskpool import TaskPool
from fusionbench.engine.prepare import pending, prepare
from fusionbench.utils.cache import home
from fusionbench.utils.paths import check_writable


def resolve_device(device: str) -> str:
    """``auto`` -> cuda when available, else cpu; an unavailable or unknown device is a ConfigError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} but no CUDA device is available; use device=cpu or device=auto")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ConfigError(f"device={device!r} is not valid; choose auto, cpu, cuda or cuda:N")
    return device


def make_method(method_cfg: DictConfig) -> Method:
    """The method a validated ``method`` group names, with its parameters."""
    method_cls = METHODS.get(method_cfg.type)
    values = {k: v for k, v in OmegaConf.to_container(method_cfg, resolve=True).items() if k not in ("type", "name")}  # type: ignore[union-attr]
    return method_cls(method_cls.Params(**values))


def build_pool(pool_cfg: DictConfig, device: str) -> ModelPool:
    """The model pool a validated ``modelpool`` group names, after building what it requires."""
    check_writable(home(), "FUSIONBENCH_HOME")
    prepare(pool_cfg.requires)
    return MODELPOOLS.get(pool_cfg.type)(pool_cfg, device=device)


def build_taskpool(taskpool_cfg: DictConfig, device: str) -> TaskPool:
    """The task pool a validated ``taskpool`` group names, after building what it requires."""
    check_writable(home(), "FUSIONBENCH_HOME")
    prepare(taskpool_cfg.requires)
    return TASKPOOLS.get(taskpool_cfg.type)(taskpool_cfg, device=device)


def build(cfg: DictConfig, device: str, pool_device: Optional[str] = None) -> tuple[ModelPool, TaskPool, Method]:
    """Instantiate the pool, task pool and method a composed config names, after building what they require.

    The pool goes on ``pool_device`` when given (``meta`` for a streamed merge: its architecture without weights).

    A side whose requirement is built (or that has none) is constructed first, and checked against the
    tasks the other side's requirement declares, so an incompatible pair fails before a build starts.
    """
    check_writable(home(), "FUSIONBENCH_HOME")  # caches and built worlds go there
    method = make_method(cfg.method)
    pool_build, taskpool_build = pending(cfg.modelpool.requires), pending(cfg.taskpool.requires)
    pool = None if pool_build else MODELPOOLS.get(cfg.modelpool.type)(cfg.modelpool, device=pool_device or device)
    taskpool = None if taskpool_build else TASKPOOLS.get(cfg.taskpool.type)(cfg.taskpool, device=device)
    if pool is not None and taskpool_build is not None and taskpool_build.tasks() is not None:
        _check_tasks(pool.tasks, taskpool_build.tasks(), cfg)  # type: ignore[arg-type]
    if taskpool is not None and pool_build is not None and pool_build.tasks() is not None:
        _check_tasks(pool_build.tasks(), taskpool.tasks, cfg)  # type: ignore[arg-type]
    prepare(cfg.modelpool.requires)
    prepare(cfg.taskpool.requires)
    if pool is None:
        pool = MODELPOOLS.get(cfg.modelpool.type)(cfg.modelpool, device=pool_device or device)
    if taskpool is None:
        taskpool = TASKPOOLS.get(cfg.taskpool.type)(cfg.taskpool, device=device)
    _check_tasks(pool.tasks, taskpool.tasks, cfg)
    return pool, taskpool, method


def _check_tasks(pool_tasks: list[str], taskpool_tasks: list[str], cfg: DictConfig) -> None:
    """A ConfigError unless the task pool evaluates every task of the pool."""
    missing = [t for t in pool_tasks if t not in taskpool_tasks]
    if missing:
        raise ConfigError(
            f"task pool {cfg.taskpool.name!r} cannot evaluate pool task {missing[0]!r}; "
            f"pick a task pool with the pool's tasks ({', '.join(pool_tasks)})"
        )
