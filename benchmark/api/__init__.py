"""The contracts every plugin and application builds on; imports nothing else of FusionBench.

``ParamDict`` (parameters), ``Method``, ``ModelPool``, ``TaskPool`` and ``ModelFamily`` (the
plugin kinds), the registries that find them, and the error hierarchy of the error contract.
"""

from fusionbench.api.errors import FusionBenchError
from fusionbench.api.families import ModelFamily
from fusionbench.api.method import Method, NoParams, check_range, param
from fusionbench.api.modelpool import ModelPool, ModelPoolConfig
from fusionbench.api.params import ParamDict
from fusionbench.api.taskpool import TaskPool, TaskPoolConfig, TaskScore

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
]
