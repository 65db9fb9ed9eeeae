"""FusionBench: a benchmark suite for multi-task model fusion.

The public API a plugin needs is importable from here; it lives in ``fusionbench.api`` and is
loaded on first use (so the ``fusionbench`` command can answer Ctrl-C while torch loads).
"""

from typing import Any

__version__ = "0.1.0"

__all__ = [
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
    if name in __all__:
        from fusionbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'fusionbench' has no attribute {name!r}")
