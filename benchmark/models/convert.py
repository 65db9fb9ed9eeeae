"""Convert a pickled checkpoint into a safetensors state dict, in a separate step the user opts into.

The task_vectors and TALL-masks releases save whole modules with ``torch.save(module)``: loading
them runs arbitrary code from the pickle and needs the classes that pickled them importable (their
repository on ``PYTHONPATH``). Pools refuse such files (``torch.load(weights_only=True)`` only);
``fusionbench convert in=FILE out=FILE.safetensors trust_pickle=true`` unpickles one, once, in a
trusted environment, and writes its floating-point tensors (a module's ``state_dict()``) with
safetensors, which every pool reads without running code.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import torch
from safetensors.torch import save_file
from torch import nn

from fusionbench.api.errors import CheckpointError, ConfigError


@dataclass
class ConvertArgs:
    """key=value words of ``fusionbench convert``."""

    src: str = ""  # the pickled checkpoint (.pt / .bin) to convert
    out: str = ""  # the safetensors file written (must not exist)
    trust_pickle: bool = False  # must be true: unpickling runs code from the file


def unpickled_state_dict(src: Path) -> dict[str, torch.Tensor]:
    """The tensors of a pickled module or state dict (non-tensor entries such as ``model_name`` are dropped).

    A plain state dict loads with ``weights_only=True`` and runs no code; only a file that needs
    the classes that pickled it is unpickled in full (the user opted in: trust_pickle=true)."""
    try:
        obj = torch.load(src, map_location="cpu", weights_only=True)
    except Exception:  # not weights-only: unpickle it in full below
        obj = None
    try:
        obj = torch.load(src, map_location="cpu", weights_only=False) if obj is None else obj
    except (ModuleNotFoundError, AttributeError) as exc:
        raise CheckpointError(
            f"{str(src)!r} needs the classes that pickled it, which are not importable ({str(exc).splitlines()[0]}); put the "
            f"repository that saved it (e.g. the task_vectors or tall_masks checkout) on PYTHONPATH and convert again"
        ) from None
    except Exception as exc:  # torch.load raises many types for files it cannot read
        raise CheckpointError(f"{str(src)!r} cannot be unpickled ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from None
    state = obj.state_dict() if isinstance(obj, nn.Module) else obj
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{str(src)!r} holds a {type(obj).__name__}, neither a module nor a state dict; nothing to convert")
    tensors = {str(k): v.detach().contiguous() for k, v in state.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise CheckpointError(f"{str(src)!r} holds no tensors; nothing to convert")
    return tensors


def convert(args: ConvertArgs) -> tuple[Path, int]:
    """Write ``args.src``'s tensors to ``args.out`` as safetensors; returns the file and its tensor count."""
    if not args.trust_pickle:
        raise ConfigError(
            "convert unpickles the file, which runs code stored in it; pass trust_pickle=true to confirm you trust "
            f"{args.src or 'the file'!r} (for example, a checkpoint downloaded from the release it names)"
        )
    if not args.src or not args.out:
        raise ConfigError("convert needs src=FILE (the pickled checkpoint) and out=FILE.safetensors (the file to write)")
    src, out = Path(args.src).expanduser(), Path(args.out).expanduser()
    if not src.is_file():
        raise ConfigError(f"src={args.src!r} does not exist; give the pickled checkpoint file")
    if out.suffix != ".safetensors" or out.exists() or not out.parent.is_dir():
        raise ConfigError(f"out={args.out!r} must be a new .safetensors file in an existing folder")
    tensors = unpickled_state_dict(src)
    save_file(tensors, str(out))
    return out, len(tensors)
