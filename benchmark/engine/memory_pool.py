"""A model pool held in memory: a base ParamDict and one fine-tuned ParamDict per task.

Every shipped method runs on tensors a user already holds, with no checkpoint and no subclassing::

    pool = ParamDictPool(base=theta0, finetuned={"a": theta_a, "b": theta_b})
    merged = fusionbench.merge("ties", pool, k=0.2)

``model(params)`` returns ``params`` itself unless a ``model`` function (ParamDict -> evaluation-ready
object) is given, so a task pool can evaluate the pool's merges.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Optional

import torch

from fusionbench.api.errors import ConfigError, ParamMismatchError
from fusionbench.api.modelpool import MODES, ModelPool, ModelPoolConfig
from fusionbench.api.params import ParamDict


@dataclass
class ParamDictPoolConfig(ModelPoolConfig):
    """What a ParamDictPool is called and the fine-tuning mode its parameters come from."""

    mode: str = "full"


class ParamDictPool(ModelPool):
    """A base and fine-tuned ParamDicts (or name -> tensor mappings) held in memory (see the module docstring)."""

    name = "paramdict"
    description = "a base and one fine-tuned ParamDict per task, held in memory (Python API)"
    Config = ParamDictPoolConfig

    def __init__(
        self,
        base: Mapping[str, torch.Tensor],
        finetuned: Mapping[str, Mapping[str, torch.Tensor]],
        mode: str = "full",
        name: str = "paramdict",
        model: Optional[Callable[[ParamDict], Any]] = None,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode={mode!r} is not valid; choose one of {', '.join(MODES)}")
        if not finetuned:
            raise ConfigError("a ParamDictPool needs at least one fine-tuned ParamDict: finetuned={task: params}")
        self._base = ParamDict(dict(base))
        self._finetuned = {str(task): ParamDict(dict(params)) for task, params in finetuned.items()}
        for task, params in self._finetuned.items():
            try:
                self._base.check_compatible(params)
            except ParamMismatchError as exc:
                raise ParamMismatchError(f"the fine-tuned parameters of task {task!r} do not match the base: {exc}") from None
        self._mode = mode
        self._model = model
        self._digest: Optional[str] = None
        super().__init__(ParamDictPoolConfig(type=self.name, name=name, mode=mode))

    def all_tasks(self) -> list[str]:
        return list(self._finetuned)

    @property
    def mode(self) -> str:
        return self._mode

    def base(self) -> ParamDict:
        return ParamDict(self._base)

    def finetuned(self, task: str) -> ParamDict:
        if task not in self._finetuned:
            raise ConfigError(f"pool {self.config.name!r} has no task {task!r}; valid tasks: {', '.join(self._finetuned)}")
        return ParamDict(self._finetuned[task])

    def model(self, params: ParamDict) -> Any:
        self._base.check_compatible(params)
        return params if self._model is None else self._model(params)

    def identity(self) -> dict[str, Any]:
        if self._digest is None:
            digest = hashlib.sha256()
            for params in (self._base, *self._finetuned.values()):
                for key, tensor in params.items():
                    digest.update(f"{key}:{tensor.dtype}:{tuple(tensor.shape)}".encode())
                    digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
            self._digest = digest.hexdigest()
        return {"type": self.name, "mode": self.mode, "tasks": self.all_tasks(), "sha256": self._digest}
