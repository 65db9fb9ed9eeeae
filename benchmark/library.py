"""FusionBench from Python: ``fusionbench.merge``, ``run``, ``load_pool``, ``load_taskpool`` (and ``ParamDictPool``).

Each call is composed from the same ``key=value`` words as the command line, so it is validated the same way
and fails with the same messages, raised as exceptions (``fusionbench.FusionBenchError`` subclasses) instead of
printed. A dotted command-line key is passed as ``**{"method.k": 0.2}`` or with ``__`` for the dot
(``method__k=0.2``). Examples: docs/python_api.md (run by tests/test_python_api.py).
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

from fusionbench.api.errors import ConfigError
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool
from fusionbench.config.compose import compose, load_option, validate
from fusionbench.engine.build import build_pool, build_taskpool, make_method, resolve_device
from fusionbench.engine.memory_pool import ParamDictPool
from fusionbench.engine.merge import checked_merge
from fusionbench.engine.report import Report
from fusionbench.engine.store import StoredResult, default_store, stored_rows
from fusionbench.runner import RunSchema
from fusionbench.runner import run as run_config
from fusionbench.utils.paths import user_path

__all__ = ["ParamDictPool", "Report", "StoredResult", "load_pool", "load_results", "load_taskpool", "merge", "run"]


def word_value(value: Any) -> str:
    """A Python value as a command-line value: lists ``[a,b]``, booleans ``true`` / ``false``, None ``null``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(word_value(item) for item in value) + "]"
    return str(value)


def words(values: Mapping[str, Any]) -> list[str]:
    """``key=value`` words for keyword arguments (``__`` in a key stands for ``.``)."""
    return [f"{key.replace('__', '.')}={word_value(value)}" for key, value in values.items()]


def merge(method: str, pool: ModelPool, data: Optional[TaskPool] = None, **params: Any) -> ParamDict:
    """Merge ``pool`` with the registered method ``method`` (or a method YAML file) and its ``params``; returns a ParamDict.

    Args:
        method: a registry name (``fusionbench list methods``) or a path to a method YAML file.
        pool: any ModelPool: ``load_pool(...)``, a ``ParamDictPool`` or a pool of your own.
        data: a task pool, for the methods that need data (``load_taskpool(...)``).
        **params: the method's parameters, validated as ``method.KEY=VALUE`` words are.

    Returns:
        The merged parameters, checked as ``fusionbench run`` checks them (names, shapes, dtypes, finite).
    """
    chosen = make_method(validate("method", load_option("method", method), method, words(params)))
    chosen.check_pool(pool)
    if chosen.needs_data and data is None:
        raise ConfigError(f"method {chosen.name!r} needs data: pass data=fusionbench.load_taskpool(...) with the pool's tasks")
    missing = [task for task in pool.tasks if chosen.needs_data and data is not None and task not in data.tasks]
    if missing:
        raise ConfigError(f"data has no task {missing[0]!r} of the pool; pass a task pool with the pool's tasks ({', '.join(pool.tasks)})")
    return checked_merge(chosen, pool, data if chosen.needs_data else None)


def run(method: str, modelpool: str, taskpool: Optional[str] = None, **overrides: Any) -> Report:
    """``fusionbench run method=... modelpool=... [taskpool=...] KEY=VALUE ...``; returns the report (also written to disk).

    Example: ``fusionbench.run(method="ties", modelpool="dummy", method__k=0.2, output_dir="out/ties")``.
    """
    chosen = {"method": method, "modelpool": modelpool, **({"taskpool": taskpool} if taskpool else {})}
    return run_config(compose(words(chosen) + words(overrides), RunSchema))


def load_pool(modelpool: str, device: str = "cpu", **overrides: Any) -> ModelPool:
    """The model pool a shipped option or YAML file names, with ``modelpool.KEY=VALUE`` overrides (building what it requires)."""
    return build_pool(validate("modelpool", load_option("modelpool", modelpool), modelpool, words(overrides)), resolve_device(device))


def load_taskpool(taskpool: str, device: str = "cpu", **overrides: Any) -> TaskPool:
    """The task pool a shipped option or YAML file names, with ``taskpool.KEY=VALUE`` overrides (building what it requires)."""
    return build_taskpool(validate("taskpool", load_option("taskpool", taskpool), taskpool, words(overrides)), resolve_device(device))


def load_results(store: Optional[str] = None, **filters: str) -> list[StoredResult]:
    """``fusionbench results [store=PATH] [method=M] [pool=P] [taskpool=T] [task=X] [split=S]``: the stored evaluations.

    One ``StoredResult`` per evaluation (method, params, pool, subset, task, split, value, stderr, n, ...), in the
    order written, from the store sweeps write (``$FUSIONBENCH_HOME/results.sqlite`` unless ``store`` names another).
    ``pandas.DataFrame(load_results(...))`` makes them a table; ``to_dict()`` is the row ``results format=json`` exports.
    """
    return stored_rows(user_path(store) if store else default_store(), dict(filters))
