"""The Method contract: a fusion algorithm that turns a model pool into one ParamDict.

A method is a class with a registry ``name``, a one-line ``description``, a paper
``reference``, a ``version`` (bump it when results change), a ``Params`` dataclass
whose fields carry their defaults and meaning (``param(default, "meaning")``), and a
default sweep ``grid``. ``merge`` sees only ParamDicts through the pool, so one method
works on full, LoRA and L-LoRA pools alike.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import MISSING, dataclass, field, fields
from typing import TYPE_CHECKING, Any, ClassVar, Optional

from fusionbench.api.errors import ConfigError
from fusionbench.api.params import ParamDict

if TYPE_CHECKING:
    from fusionbench.api.modelpool import ModelPool
    from fusionbench.api.taskpool import DataUse, TaskPool


def param(default: Any, help: str) -> Any:
    """A method parameter with its default and its documented meaning."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default, metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class NoParams:
    """A method without parameters."""


def param_help(params_cls: type) -> list[tuple[str, Any, str]]:
    """(name, default, meaning) for each field of a Params dataclass."""
    out = []
    for f in fields(params_cls):
        default = f.default if f.default is not MISSING else f.default_factory()  # type: ignore[misc]
        out.append((f.name, default, f.metadata.get("help", "")))
    return out


class Method(ABC):
    """Base class of every fusion method."""

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str]
    version: ClassVar[str] = "1"
    Params: ClassVar[type] = NoParams
    grid: ClassVar[dict[str, list[Any]]] = {}
    min_tasks: ClassVar[int] = 1  # fewest tasks the method is defined for
    needs_data: ClassVar[bool] = False  # True: merge() uses the task pool's data API
    data_needs: ClassVar[str] = ""  # data-based methods: what they compute on the data and which pools they take (``fusionbench list methods``)
    tensorwise: ClassVar[bool] = False  # True: each merged tensor depends on that tensor of the inputs alone, so it may stream

    def __init__(self, params: Any | None = None) -> None:
        self.params = params if params is not None else self.Params()
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError for parameter values out of range (override per method)."""

    def data_use(self) -> Optional[DataUse]:
        """What ``merge`` reads of the task pool (methods with ``needs_data`` say it); None: no data."""
        return None

    def check_pool(self, pool: ModelPool) -> None:
        if len(pool.tasks) < self.min_tasks:
            raise ConfigError(
                f"method {self.name!r} needs at least {self.min_tasks} tasks but the pool has "
                f"{len(pool.tasks)} ({', '.join(pool.tasks) or 'none'}); add tasks to the pool"
            )

    @abstractmethod
    def merge(self, pool: ModelPool, data: TaskPool | None = None) -> ParamDict:
        """Merged parameters in the pool's parameter space."""


def check_range(
    method: str, name: str, value: float, low: float, high: float, low_open: bool = False, high_open: bool = False
) -> None:
    """Raise ConfigError unless low <(=) value <(=) high; the message shows the interval."""
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    ok_low = numeric and (value > low if low_open else value >= low)
    ok_high = numeric and (value < high if high_open else value <= high)
    if not (ok_low and ok_high):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        raise ConfigError(f"method {method!r}: {name}={value!r} is out of range; it must lie in {interval}")
