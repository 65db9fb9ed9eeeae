"""FusionBench: a benchmark suite for multi-task model fusion.

The public API a plugin needs is importable from here; it lives in ``fusionbench.api``.
"""

from fusionbench import api
from fusionbench.api import *  # noqa: F401,F403  (the public API, re-exported)

__version__ = "0.1.0"

__all__ = [*api.__all__, "__version__"]
