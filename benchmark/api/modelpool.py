"""The ModelPool contract: a base model and its fine-tuned versions, one per task.

Parameters are exposed as ParamDicts in the pool's trainable parameter space (see
``fusionbench.api.params``). ``model(params)`` returns an evaluation-ready module; it reuses
one resident module per process and copies values into it, never deep-copying a model
per candidate.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Optional

import torch
from omegaconf import MISSING

from fusionbench.api.derived import DerivedCache
from fusionbench.api.errors import ConfigError, check_unique, choices_text
from fusionbench.api.params import ParamDict
from fusionbench.api.roles import guessed_role

MODES = ("full", "lora", "llora")
# Where a pool's fine-tuned checkpoints come from: scores are comparable only within one family (the same
# tasks give other task-arithmetic baselines on FusionBench's HF fine-tunes than on the task_vectors /
# TALL-mask OpenCLIP fine-tunes), so reports and leaderboard entries carry it and tables never mix families.
CHECKPOINT_FAMILIES = ("fusionbench-hf", "task-vectors-openclip", "local")
SAVE_FORMATS = ("auto", "dense", "adapter")  # how a merged model is written; auto: the pool's natural format
TensorMerge = Callable[[str, torch.Tensor, list[torch.Tensor]], torch.Tensor]  # (name, theta_0, [theta_t]) -> merged tensor


@dataclass
class ModelPoolConfig:
    """Fields every model pool config has; pools extend this dataclass."""

    type: str = MISSING  # registered pool class
    name: str = ""  # this pool's identity (defaults to the config file's stem)
    taskpool: str = ""  # task pool used when the command names none
    requires: Optional[str] = None  # a registered Requirement the engine builds before constructing the pool, e.g. mini_vision
    family: str = "local"  # checkpoint family (CHECKPOINT_FAMILIES): fusionbench-hf | task-vectors-openclip | local


class ModelPool(ABC):
    """Base class of every model pool."""

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str] = ""
    Config: ClassVar[type] = ModelPoolConfig
    adapter_prefix: ClassVar[str] = ""  # path, in the evaluated module, of the module LoRA adapters wrap ("" = the module itself)

    def __init__(self, config: Any, device: str = "cpu") -> None:
        if config.family not in CHECKPOINT_FAMILIES:
            raise ConfigError(
                f"modelpool.family={config.family!r} is not a checkpoint family; choose one of {', '.join(CHECKPOINT_FAMILIES)} "
                f"(local: checkpoints you made or downloaded yourself)"
            )
        self.config = config
        self.device = device
        # per-task quantities data-based methods derive from the weights (fusionbench.api.derived): a sweep
        # worker sets it on its resident pool, whose subset views share it; None computes them on every merge
        self.derived: Optional[DerivedCache] = None
        self._tasks: list[str] = list(self.all_tasks())
        check_unique(self._tasks, f"pool {config.name!r}")

    # ------------------------------------------------------------ contract
    @abstractmethod
    def all_tasks(self) -> list[str]:
        """Every task the pool has a fine-tuned model for, in config order."""

    @property
    @abstractmethod
    def mode(self) -> str:
        """'full', 'lora' or 'llora'."""

    @abstractmethod
    def base(self) -> ParamDict:
        """phi_0 / theta_0: the parameters the fine-tuning started from."""

    @abstractmethod
    def finetuned(self, task: str) -> ParamDict:
        """phi_t / theta_t for ``task``."""

    @abstractmethod
    def model(self, params: ParamDict) -> Any:
        """An evaluation-ready module holding ``params`` (resident, updated in place)."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What determines this pool's results: base id, mode, per-task checkpoint hashes."""

    def module_parameters(self, params: ParamDict) -> Mapping[str, torch.Tensor]:
        """The parameters of the module ``model`` evaluates, by that module's names, as functions of ``params``
        (differentiable in them): what the data-based methods pass to ``torch.func.functional_call``. By default
        ``params`` themselves (a full pool's parameters are its model's); adapter pools return the folded weights."""
        return params

    def dense_weights(self) -> dict[str, str]:
        """Pool parameter name -> the parameter of ``model``'s module that it is (full pools) or that it is added to
        (the dense per-layer updates of adapter pools with ``merge_space=delta``); adapter factors have none. RegMean
        merges the ones that are Linear weights."""
        return {name: name for name in self.base()} if self.mode == "full" else {}

    # ------------------------------------------------------------- derived
    @property
    def tasks(self) -> list[str]:
        return list(self._tasks)

    @property
    def family(self) -> str:
        """The checkpoint family (``CHECKPOINT_FAMILIES``) that reports and leaderboard entries carry."""
        return str(self.config.family)

    def tensor_role(self, name: str, tensor: torch.Tensor) -> str:
        """The role (``fusionbench.api.roles.ROLES``) of the tensor ``name`` of this pool's parameter space.

        Pools of a known family answer from the family's declared ``TensorRoles`` and refuse a name it does
        not describe; this default, for pools that declare none, guesses from the name (``guessed_role``).
        """
        return guessed_role(name, tensor)

    def save_format(self, requested: str) -> str:
        """The format (``dense`` or ``adapter``) a merge of this pool is written in for ``save_format=requested``.

        ``auto`` picks the pool's natural format; a format the pool cannot write is a ConfigError saying
        why and what works. This default writes every pool's parameters as one dense safetensors file.
        """
        if requested == "adapter":
            raise ConfigError(
                f"save_format=adapter is not possible for pool {self.config.name!r}: its parameters (mode {self.mode}) are "
                f"not LoRA adapters; use save_format=dense (or auto)"
            )
        return "dense"

    def save(self, params: ParamDict, directory: Path, save_format: str) -> None:
        """Write the merged ``params`` as a model into the existing empty ``directory``, in a resolved ``save_format``.

        This default writes ``model.safetensors`` holding the ParamDict; pools of a model ecosystem write
        what that ecosystem loads (``save_pretrained`` directories, peft adapters).
        """
        params.save(directory / "model.safetensors")

    def save_streamed(self, merge_tensor: TensorMerge, directory: Path) -> None:
        """Write the merged model into the existing empty ``directory`` reading one tensor of each checkpoint at a time.

        ``merge_tensor(name, theta_0, [theta_t per task])`` gives the merged tensor of the parameter ``name``. Pools
        whose checkpoints are safetensors files implement it (full transformers pools); this default refuses.
        """
        raise ConfigError(
            f"stream=true is not possible for pool {self.config.name!r} (type {self.name}): it does not read its checkpoints "
            f"tensor by tensor from safetensors files; leave stream=false to merge in memory"
        )

    def task_vector(self, task: str) -> ParamDict:
        """tau_t = phi_t - phi_0."""
        return self.finetuned(task) - self.base()

    def subset(self, tasks: list[str]) -> ModelPool:
        """A view of this pool restricted to ``tasks`` (shares loaded weights and the resident model)."""
        unknown = [t for t in tasks if t not in self.all_tasks()]
        if unknown:
            raise ConfigError(
                f"pool {self.config.name!r} has no task {unknown[0]!r}; valid tasks: {choices_text(self.all_tasks())}"
            )
        view = copy.copy(self)
        view._tasks = list(tasks)
        return view

