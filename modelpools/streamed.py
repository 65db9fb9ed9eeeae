"""Merging full transformers checkpoints tensor by tensor from safetensors files, for models larger than memory.

For each tensor of the base's weight files (in their order), the tensor of the base and of every task's
checkpoint is read (``safe_open``, one tensor at a time), merged by the method's per-tensor merge, and
appended to the output ``model.safetensors`` (``fusionbench.models.streaming.SafetensorsWriter``); tensors the
pool does not merge (CLIP's text tower) are copied from the base. The base folder's other files (config,
processor, tokenizer) are copied beside it, so the folder loads as the in-memory save does, with the same values.
A streaming pool is built on the ``meta`` device (``load_weights``): the base's architecture without its weights,
so no checkpoint is ever held in memory whole.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch
from torch import nn

from fusionbench.api.errors import ConfigError
from fusionbench.api.modelpool import TensorMerge
from fusionbench.models.checkpoints import tensor_files
from fusionbench.models.streaming import SafetensorsWriter, read_tensor, tensor_layout

_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".index.json")


def load_weights(model_class: Any, path: Path, dtype: torch.dtype, device: str) -> tuple[nn.Module, dict[str, Any]]:
    """``model_class.from_pretrained(path)`` and its loading info; on the ``meta`` device (a streaming pool) the
    architecture of ``path``'s config.json, weightless, with nothing missing."""
    if device != "meta":
        return model_class.from_pretrained(str(path), dtype=dtype, output_loading_info=True)
    with torch.device("meta"):
        return model_class(model_class.config_class.from_pretrained(str(path))).to(dtype), {"missing_keys": []}


class StreamedFullSave:
    """``ModelPool.save_streamed`` for the full mode of ``TransformersModelPool`` (see the module docstring)."""

    def save_streamed(self: Any, merge_tensor: TensorMerge, directory: Path) -> None:
        if self.mode != "full":
            raise ConfigError(
                f"stream=true merges full checkpoints tensor by tensor, but pool {self.config.name!r} has mode={self.mode}, "
                f"whose adapters merge in memory (megabytes); leave stream=false"
            )
        base_files = _safetensors(tensor_files(self._base_loc.path), f"the base model {self.config.base!r}")
        sources = []
        for task in self.tasks:
            found = _safetensors(tensor_files(self._locs[task].path), f"the checkpoint of task {task!r} ({self._locs[task].path})")
            sources.append((found, self._full_mapping({k: shape for k, (_, shape) in found.items()}, self._where(task))))
        base_keys = self._full_mapping({k: shape for k, (_, shape) in base_files.items()}, f"base model {self.config.base!r}")
        param_of = {key: name for name, key in base_keys.items()}
        layout = {}
        for file in dict.fromkeys(file for file, _ in base_files.values()):
            layout.update(tensor_layout(file))
        with SafetensorsWriter(directory / "model.safetensors", layout, {"format": "pt"}) as writer:
            for key, (dtype, _) in layout.items():
                tensor = read_tensor(base_files[key][0], key)
                name = param_of.get(key)
                if name is not None:
                    base = tensor.float()
                    finetuned = [read_tensor(found[keys[name]][0], keys[name]).float() if name in keys else base for found, keys in sources]
                    tensor = merge_tensor(name, base, finetuned)
                writer.write(key, tensor.to(dtype))
        if self._base_loc.path.is_dir():
            for file in sorted(self._base_loc.path.iterdir()):
                if file.is_file() and not file.name.endswith(_WEIGHT_SUFFIXES):
                    shutil.copyfile(file, directory / file.name)


def _safetensors(found: Any, what: str) -> Any:
    """``found`` (``tensor_files``' answer) unless it is None: then a ConfigError, since a pickle cannot stream."""
    if found is None:
        raise ConfigError(
            f"stream=true needs safetensors checkpoints, but {what} is a torch pickle (.bin); leave stream=false to merge "
            f"in memory, or re-save the checkpoint with safetensors"
        )
    return found
