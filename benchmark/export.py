"""Merge only: model pool x method -> a saved merged model, no evaluation (``fusionbench merge``).

``fusionbench merge method=M modelpool=P [tasks=a,b] out=DIR`` builds the pool, merges (a subset of) its
tasks with the method and writes the merged model into DIR in the format its ecosystem loads (see
``ModelPool.save_format``) with a model card, atomically (``fusionbench.engine.save``). With ``stream=true`` a
full pool of safetensors checkpoints is merged tensor by tensor (``ModelPool.save_streamed``), for the methods
that merge each tensor on its own (``Method.tensorwise``), so models larger than memory can be merged: a pool that
implements it is built on the ``meta`` device (its architecture, no weights).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import torch
from omegaconf import DictConfig

from fusionbench.api.errors import ConfigError
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.plugins import METHODS, MODELPOOLS
from fusionbench.api.words import word_list
from fusionbench.engine.build import build, resolve_device
from fusionbench.engine.merge import checked_merge, tensor_merge
from fusionbench.engine.model_card import model_card
from fusionbench.engine.save import check_save_request, save_merged
from fusionbench.utils.paths import user_path


@dataclass
class MergeSchema:
    """Top-level keys of ``fusionbench merge``."""

    method: Any = None
    modelpool: Any = None
    taskpool: Any = None  # data for the methods that need it (default: the one the model pool names)
    tasks: Any = None  # a,b or [a,b]: merge these tasks of the pool (default: all)
    out: Optional[str] = None  # the folder the merged model is written to (required; it must not exist, unless overwrite is true)
    overwrite: bool = False  # replace an existing out folder
    save_format: str = "auto"  # auto (the pool's natural format) | dense | adapter
    stream: bool = False  # full safetensors pools, tensorwise methods: merge tensor by tensor from the checkpoints
    seed: int = 0  # global torch seed
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    plugins: list[str] = field(default_factory=list)  # plugin .py files or modules defining methods / pools, loaded first


@dataclass
class Saved:
    """Where a merged model was written, in which format, from which tasks, and how long the merge took."""

    out: Path
    save_format: str
    tasks: list[str]
    merge_seconds: float


def merge_to_folder(cfg: DictConfig) -> Saved:
    """Merge the configured pool (or its ``tasks``) with the method and save the merged model into ``out``."""
    if not cfg.out:
        raise ConfigError("fusionbench merge needs out=DIR, the folder the merged model is written to")
    target = user_path(cfg.out)
    check_save_request(target, cfg.overwrite, cfg.save_format, "out")
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    streams = cfg.stream and MODELPOOLS.get(cfg.modelpool.type).save_streamed is not ModelPool.save_streamed
    pool, taskpool, method = build(cfg, device, "meta" if streams else None)  # a streaming pool reads weights from its files
    if cfg.tasks is not None:
        tasks = word_list(cfg.tasks)
        if not tasks:
            raise ConfigError(f"tasks= names no task; give some of the pool's tasks ({', '.join(pool.tasks)}) or leave it out for all")
        pool = pool.subset(tasks)
    method.check_pool(pool)
    save_format = pool.save_format(cfg.save_format)
    card = model_card(cfg, method, pool, save_format)
    start = time.perf_counter()
    if cfg.stream:
        _check_tensorwise(method)
        save_merged(lambda folder: pool.save_streamed(tensor_merge(method, pool), folder), target, card)
        return Saved(target, save_format, pool.tasks, time.perf_counter() - start)
    merged = checked_merge(method, pool, taskpool if method.needs_data else None)
    seconds = time.perf_counter() - start
    save_merged(lambda folder: pool.save(merged, folder, save_format), target, card)
    return Saved(target, save_format, pool.tasks, seconds)


def _check_tensorwise(method: Method) -> None:
    """A ConfigError unless ``method`` merges each tensor on its own (then it can stream), naming the methods that do."""
    if not method.tensorwise:
        streamable = [name for name in METHODS.names() if METHODS.get(name).tensorwise]
        raise ConfigError(
            f"stream=true merges one tensor at a time, but method {method.name!r} needs whole models at once; use a method "
            f"that merges each tensor on its own ({', '.join(streamable)}) or leave stream=false"
        )
