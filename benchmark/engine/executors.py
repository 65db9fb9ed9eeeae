"""Executors for sweep jobs: in-process, a local pool of worker processes, or Ray.

A job is one merged model (method parameters on a task subset) evaluated on its tasks for
one split; reference models are scored once by ``fusionbench.engine.references``. Every executor builds the same resident pool, task
pool and method from the resolved config, runs the same job code and returns plain rows,
so results are identical whichever executes them; only the driver writes the store.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import os
import socket
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator, Optional

import torch
from omegaconf import OmegaConf

from fusionbench.api.derived import DerivedCache
from fusionbench.api.errors import ConfigError, FusionBenchError
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.taskpool import TaskPool
from fusionbench.engine.merge import merge_and_evaluate
from fusionbench.utils.quiet import quiet_libraries


@dataclass(frozen=True)
class Job:
    """Merge ``method`` with ``params`` on ``subset`` and evaluate on ``split``."""

    method: str
    params: tuple[tuple[str, Any], ...]
    subset: tuple[str, ...]
    split: str


@dataclass
class JobResult:
    job: Job
    scores: dict[str, dict[str, Any]]  # task -> TaskScore as dict
    seconds: float = 0.0
    error: Optional[str] = field(default=None)


class Worker:
    """Holds one resident pool, task pool and method, and runs jobs against them."""

    def __init__(self, pool: ModelPool, taskpool: TaskPool, method: Method, seed: int) -> None:
        self.pool, self.taskpool, self.method, self.seed = pool, taskpool, method, seed
        pool.derived = DerivedCache()  # the pool and task pool stay fixed: per-task Fishers / Grams are reused across jobs

    def run(self, job: Job) -> JobResult:
        start = time.perf_counter()
        torch.manual_seed(self.seed)
        pool = self.pool.subset(list(job.subset))
        method = type(self.method)(replace(self.method.params, **dict(job.params)))
        scores = merge_and_evaluate(method, pool, self.taskpool, job.split).scores
        return JobResult(job, {t: asdict(s) for t, s in scores.items()}, time.perf_counter() - start)


class ConfigWorker(Worker):
    """A worker that builds its own resident models from a resolved config (worker processes, Ray actors)."""

    def __init__(self, config: dict[str, Any], threads: int = 0) -> None:
        from fusionbench.api.plugins import MODELPOOLS, TASKPOOLS, load_plugins
        from fusionbench.engine.build import build

        if threads > 0:
            torch.set_num_threads(threads)
        cfg = OmegaConf.create(config)
        load_plugins(list(cfg.plugins))
        # the pools read typed configs: lay the plain values over their schemas again
        cfg.modelpool = OmegaConf.merge(OmegaConf.structured(MODELPOOLS.get(cfg.modelpool.type).Config), cfg.modelpool)
        cfg.taskpool = OmegaConf.merge(OmegaConf.structured(TASKPOOLS.get(cfg.taskpool.type).Config), cfg.taskpool)
        super().__init__(*build(cfg, cfg.device), seed=int(cfg.seed))


_WORKER: Optional[Worker] = None


def _init_process(config: dict[str, Any], threads: int) -> None:
    global _WORKER
    quiet_libraries()
    _WORKER = ConfigWorker(config, threads)


def _run_in_process(job: Job) -> JobResult:
    assert _WORKER is not None
    try:
        return _WORKER.run(job)
    except FusionBenchError as exc:
        return JobResult(job, {}, error=str(exc))


class LocalExecutor:
    """``workers=1``: run in this process; ``workers>1``: that many processes, one resident model each."""

    def __init__(self, config: dict[str, Any], workers: int, threads: int, resident: Optional[Worker] = None) -> None:
        if workers < 1:
            raise ConfigError(f"workers={workers} must be at least 1")
        self.config, self.workers, self.threads = config, workers, threads
        self._worker = resident

    def map(self, jobs: list[Job]) -> Iterator[JobResult]:
        if self.workers == 1:
            self._worker = self._worker or ConfigWorker(self.config, self.threads)
            for job in jobs:
                yield self._worker.run(job)
            return
        context = multiprocessing.get_context("spawn")
        threads = self.threads or max(1, (os.cpu_count() or 1) // self.workers)  # oversubscribed cores stall torch
        with cf.ProcessPoolExecutor(self.workers, mp_context=context, initializer=_init_process, initargs=(self.config, threads)) as ex:
            for future in cf.as_completed([ex.submit(_run_in_process, job) for job in jobs]):
                yield future.result()

    def close(self) -> None:
        self._worker = None


def _check_reachable(address: str, timeout: float = 3.0) -> None:
    """Fail fast (Ray itself retries for minutes) when a host:port cluster address does not answer."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout).close()
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"Ray cluster at {address!r} cannot be reached ({exc}); start one with `ray start --head`, "
            f"use ray.address=auto for the local cluster, or leave ray.address unset to start one"
        ) from None


class RayExecutor:
    """Ray actors, each holding one resident model; jobs declare their CPU/GPU needs."""

    def __init__(self, config: dict[str, Any], address: Optional[str], actors: int, cpus: float, gpus: float, threads: int) -> None:
        try:
            import ray
        except ImportError:
            raise ConfigError("executor=ray needs Ray: pip install 'fusionbench[distributed]'") from None
        self.ray = ray
        if address and address != "auto":
            _check_reachable(address)
        try:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False, include_dashboard=False, logging_level=logging.ERROR)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            where = address or "a new local cluster"
            raise ConfigError(f"Ray cluster at {where!r} cannot be reached ({str(exc).splitlines()[0]}); start one with `ray start --head` or use ray.address=null for a local one") from None
        have = ray.cluster_resources()
        for resource, need in (("CPU", cpus), ("GPU", gpus)):
            if need > have.get(resource, 0):  # Ray would wait forever for an actor it cannot place
                self.close_cluster()
                raise ConfigError(
                    f"each Ray actor asks for {need:g} {resource}(s) but the cluster has {have.get(resource, 0):g}; "
                    f"lower ray.{resource.lower()}s_per_actor or join a cluster that has them (ray.address=...)"
                )
        remote_worker = ray.remote(num_cpus=cpus, num_gpus=gpus)(ConfigWorker)
        self.actors = [remote_worker.remote(config, threads) for _ in range(actors)]

    def map(self, jobs: list[Job]) -> Iterator[JobResult]:
        from ray.util import ActorPool

        pool = ActorPool(self.actors)
        yield from pool.map_unordered(lambda actor, job: actor.run.remote(job), jobs)

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)

    def close_cluster(self) -> None:
        """Leave the cluster (a local one started for this sweep stops)."""
        self.ray.shutdown()
