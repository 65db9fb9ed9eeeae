"""FusionBench: a benchmark suite for multi-task model fusion.

The public API is importable from here and loaded on first use (so the ``fusionbench`` command can answer
Ctrl-C while torch loads): what a plugin needs lives in ``fusionbench.api``; the Python API (``merge``,
``run``, ``load_pool``, ``load_taskpool``, ``load_results``, ``ParamDictPool``, ``Report``, ``StoredResult``) in ``fusionbench.library``.
"""

from typing import Any

__version__ = "0.1.0"

LIBRARY = ["ParamDictPool", "Report", "StoredResult", "load_pool", "load_results", "load_taskpool", "merge", "run"]

__all__ = [
    *LIBRARY,
    "FusionBenchError",
    "Method",
    "ModelFamily",
    "ModelPool",
    "ModelPoolConfig",
    "NoParams",
    "ParamDict",
    "TaskPool",
    "TaskPoolConfig",
    "TaskScore",
    "check_range",
    "param",
    "__version__",
]


def __getattr__(name: str) -> Any:
    if name in LIBRARY:
        from fusionbench import library

        return getattr(library, name)
    if name in __all__:
        from fusionbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'fusionbench' has no attribute {name!r}")
