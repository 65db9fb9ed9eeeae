"""Finding and reading checkpoints safely: hub-or-local entries, state dicts, key matching, digests.

A pool entry is a local path or a Hugging Face hub id. :func:`resolve_entries` checks every
entry of a pool up front (local files, then the local HF cache, then one reachability
probe of the hub) and stops with one message before any weight is loaded when something
cannot be had. State dicts are read only from safetensors or with
``torch.load(weights_only=True)``; a pickle-only checkpoint is refused.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Collection, Mapping, Optional, Sequence

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from fusionbench.api.errors import CheckpointError, ParamMismatchError
from fusionbench.utils.cache import cached_json

# Weight files looked for in a checkpoint directory, most preferred first.
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "open_clip_model.safetensors",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "open_clip_pytorch_model.bin",
)
_SHOW = 3


@dataclass(frozen=True)
class Entry:
    """One model a pool needs: where the config says it is, and what it is for."""

    key: str  # config key holding it, e.g. "modelpool.models.sun397"
    value: str  # hub id or local path, as configured
    what: str  # e.g. "base model" or "checkpoint of task 'sun397'"


@dataclass(frozen=True)
class Resolved:
    """A located entry: a local path, plus the hub id and commit when it came from the hub."""

    path: Path
    hub_id: Optional[str] = None
    commit: Optional[str] = None


def looks_like_path(value: str) -> bool:
    """True for local paths; hub ids have the form ``owner/name`` (or ``name``)."""
    return value.startswith(("/", ".", "~")) or value.count("/") > 1 or os.sep != "/" and os.sep in value


def _offline_reason() -> Optional[str]:
    flag = os.environ.get("HF_HUB_OFFLINE", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return "HF_HUB_OFFLINE is set"
    return None


@lru_cache(maxsize=4)
def _probe(endpoint: str, timeout: float) -> Optional[str]:
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint, method="HEAD"), timeout=timeout)
    except urllib.error.HTTPError:
        return None  # the server answered: reachable
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"cannot connect to {endpoint}: {reason}"
    return None


def hub_unreachable_reason(timeout: float = 5.0) -> Optional[str]:
    """None when the Hugging Face hub answers, else why not (offline flag or connection error)."""
    reason = _offline_reason()
    if reason:
        return reason
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    return _probe(endpoint, timeout)


def _cached_snapshot(repo_id: str) -> Optional[Path]:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError):
        return None


def _download(entry: Entry, allow_patterns: Sequence[str]) -> Path:
    from huggingface_hub import snapshot_download

    try:
        path = Path(snapshot_download(entry.value, allow_patterns=list(allow_patterns)))
        if not any((path / name).exists() for name in WEIGHT_FILES + ("adapter_model.safetensors", "adapter_model.bin", "linearized_adapter_model.safetensors")):
            path = Path(snapshot_download(entry.value, allow_patterns=list(allow_patterns) + ["*.bin"]))
    except Exception as exc:  # hub errors come in many types
        raise CheckpointError(
            f"cannot download {entry.what} {entry.value!r} from the Hugging Face hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}); check the name or set {entry.key}=/path/to/local/copy"
        ) from None
    return path


def resolve_entries(entries: Sequence[Entry], allow_patterns: Sequence[str], offline_hint: str) -> dict[str, Resolved]:
    """Locate every entry (keyed by ``Entry.key``), checking all of them before downloading anything.

    Local paths must exist; hub ids are taken from the local HF cache when there, else
    downloaded, but only after one probe shows the hub is reachable. Otherwise one
    CheckpointError names the first model that cannot be had and how to fix it.
    """
    found: dict[str, Resolved] = {}
    remote: list[Entry] = []
    for entry in entries:
        local = Path(entry.value).expanduser()
        if local.exists():
            found[entry.key] = Resolved(local.resolve())
        elif looks_like_path(entry.value):
            raise CheckpointError(
                f"{entry.what} {entry.value!r} does not exist; set {entry.key} to an existing local path or a hub id"
            )
        else:
            snapshot = _cached_snapshot(entry.value)
            if snapshot is not None:
                found[entry.key] = Resolved(snapshot, entry.value, snapshot.name)
            else:
                remote.append(entry)
    if remote:
        reason = hub_unreachable_reason()
        if reason is not None:
            first = remote[0]
            more = f" ({len(remote) - 1} more entries of this pool are missing too)" if len(remote) > 1 else ""
            raise CheckpointError(
                f"{first.what} {first.value!r} is not a local path nor in the local Hugging Face cache, and the "
                f"Hugging Face hub is unreachable ({reason}){more}; download it where the hub is reachable and set "
                f"{first.key}=/path/to/local/dir, or {offline_hint}"
            )
        for entry in remote:
            path = _download(entry, allow_patterns)
            found[entry.key] = Resolved(path, entry.value, path.name)
    return found


# ----------------------------------------------------------------------------- reading


def weight_file(path: Path) -> Path:
    """The weight file of a checkpoint file or directory (first of WEIGHT_FILES found)."""
    if path.is_file():
        return path
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    if (path / "adapter_config.json").is_file():
        raise CheckpointError(
            f"checkpoint directory {str(path)!r} holds a LoRA / L-LoRA adapter (adapter_config.json), not a full model; "
            f"a pool of adapters needs modelpool.mode=lora or llora"
        )
    raise CheckpointError(
        f"checkpoint directory {str(path)!r} holds no weights file (looked for {', '.join(WEIGHT_FILES)}); "
        f"point the entry at a directory saved with save_pretrained or at a .safetensors file"
    )


def _shard_files(index: Path) -> list[Path]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError) as exc:
        raise CheckpointError(f"shard index {str(index)!r} is unreadable ({exc}); re-download or re-save the checkpoint") from None
    return [index.parent / name for name in sorted(set(weight_map.values()))]


def _files(path: Path) -> list[Path]:
    file = weight_file(path)
    return _shard_files(file) if file.name.endswith(".index.json") else [file]


def _torch_load(file: Path) -> object:
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "global" in str(exc).lower():  # torch names the blocked callable: "unsupported GLOBAL posix.system"
            raise CheckpointError(
                f"checkpoint {str(file)!r} is a pickle that needs arbitrary code to load (it is not loadable with "
                f"torch.load(weights_only=True)), so it is refused; if you trust it, convert it once with "
                f"`fusionbench convert src={file} out={file.with_suffix('.safetensors')} trust_pickle=true` "
                f"and point the entry at the .safetensors file"
            ) from None
        raise CheckpointError(f"checkpoint {str(file)!r} is unreadable (corrupt or not a PyTorch file); re-download or re-save it") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(file)!r} is unreadable ({str(exc).splitlines()[0]}); re-download or re-save it") from None


def _as_state_dict(obj: object, file: Path) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(
            f"checkpoint {str(file)!r} is not a state dict (a mapping of names to tensors); save model.state_dict() instead"
        )
    return dict(obj)


def load_file_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Tensors of one weight file (safetensors, or a weights-only torch pickle)."""
    if not file.is_file():
        raise CheckpointError(f"checkpoint file {str(file)!r} does not exist; fix the path in the pool config")
    if file.suffix == ".safetensors":
        try:
            return load_file(str(file))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"checkpoint {str(file)!r} is unreadable ({exc}); re-download or re-save it") from None
    return _as_state_dict(_torch_load(file), file)


def load_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint file or directory (shards merged)."""
    out: dict[str, torch.Tensor] = {}
    for file in _files(path):
        out.update(load_file_state_dict(file))
    return out


def tensor_files(path: Path) -> Optional[dict[str, tuple[Path, tuple[int, ...]]]]:
    """Name -> (the safetensors file holding it, its shape) from the headers of a checkpoint file or directory
    (shards included), without reading tensors; None for pickle formats."""
    files = _files(path)
    if not all(f.suffix == ".safetensors" for f in files):
        return None
    found: dict[str, tuple[Path, tuple[int, ...]]] = {}
    for file in files:
        try:
            with safe_open(str(file), framework="pt") as handle:
                for key in handle.keys():
                    found[key] = (file, tuple(handle.get_slice(key).get_shape()))
        except (SafetensorError, OSError) as exc:
            raise CheckpointError(f"checkpoint {str(file)!r} is unreadable ({exc}); re-download or re-save it") from None
    return found


def tensor_shapes(path: Path) -> Optional[dict[str, tuple[int, ...]]]:
    """Name -> shape from safetensors headers without reading tensors; None for pickle formats."""
    found = tensor_files(path)
    return None if found is None else {key: shape for key, (_, shape) in found.items()}


def read_json(file: Path, what: str) -> dict:
    """A JSON object from ``file``; CheckpointError naming ``what`` when missing or malformed."""
    try:
        data = json.loads(file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{what}: {str(file)!r} does not exist; the checkpoint is incomplete, re-download or re-save it") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{what}: {str(file)!r} is not valid JSON ({exc}); re-download or re-save it") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{what}: {str(file)!r} must hold a JSON object")
    return data


# ------------------------------------------------------------------------ key matching


def _first(names: Collection[str]) -> str:
    names = sorted(names)
    return ", ".join(names[:_SHOW]) + (f" (+{len(names) - _SHOW} more)" if len(names) > _SHOW else "")


def match_state_keys(
    expected: Mapping[str, tuple[int, ...]],
    found: Mapping[str, tuple[int, ...]],
    where: str,
    hint: str,
    aliases: Optional[Mapping[str, Sequence[str]]] = None,
    ignore: Collection[str] = (),
) -> dict[str, str]:
    """Map each expected tensor name to the checkpoint key that holds it.

    Checkpoint keys may carry any common prefix (``vision_model.``, ``model.visual.`` ...):
    the prefix under which most expected names appear is used. ``aliases`` lists other
    names of tied tensors; ``ignore`` names (relative, like expected ones) that may be
    present and are skipped (buffers such as ``position_ids``). Raises ParamMismatchError
    naming the first missing, unexpected or mis-shaped keys.
    """
    aliases = aliases or {}
    names_of = {name: [name, *aliases.get(name, ())] for name in expected}
    votes: dict[str, set[str]] = {}
    for key in found:
        parts = key.split(".")
        for i in range(len(parts)):
            suffix = ".".join(parts[i:])
            prefix = ".".join(parts[:i]) + ("." if i else "")
            votes.setdefault(suffix, set()).add(prefix)
    counts: dict[str, int] = {}
    for name, options in names_of.items():
        for prefix in set().union(*(votes.get(o, set()) for o in options)):
            counts[prefix] = counts.get(prefix, 0) + 1
    if not counts:
        raise ParamMismatchError(f"{where} holds none of the base model's parameters (its keys start {_first(found)}); {hint}")
    prefix = min(counts, key=lambda p: (-counts[p], len(p)))

    mapping: dict[str, str] = {}
    used: set[str] = set()
    missing = []
    for name, options in names_of.items():
        keys = [prefix + o for o in options if prefix + o in found]
        if keys:
            mapping[name] = keys[0]
            used.update(keys)
        else:
            missing.append(name)
    if missing:
        raise ParamMismatchError(f"{where} lacks {len(missing)} parameter(s) of the base model, first: {_first(missing)}; {hint}")
    skipped = {prefix + i for i in ignore}
    extra = [k for k in found if k.startswith(prefix) and k not in used and k not in skipped]
    if extra:
        raise ParamMismatchError(f"{where} has {len(extra)} parameter(s) the base model lacks, first: {_first(extra)}; {hint}")
    bad = sorted(name for name, key in mapping.items() if tuple(found[key]) != tuple(expected[name]))
    if bad:
        name = bad[0]
        raise ParamMismatchError(
            f"{where}: {len(bad)} tensor(s) differ in shape from the base model, first {mapping[name]}: "
            f"{tuple(found[mapping[name]])} vs base {tuple(expected[name])}; {hint}"
        )
    return mapping


# ------------------------------------------------------------------------------ digests


def _hash_files(root: Path, files: list[Path]) -> str:
    digest = hashlib.sha256()
    for file in files:
        digest.update(str(file.relative_to(root) if root.is_dir() else file.name).encode())
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 22), b""):
                digest.update(block)
    return digest.hexdigest()


def content_digest(path: Path) -> str:
    """sha256 of a checkpoint file or of every file in a directory, cached on disk by (path, size, mtime)."""
    files = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")) if path.is_dir() else [path]
    stamp = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return "sha256:" + cached_json("checkpoint-digests", stamp, lambda: _hash_files(path, files))


def entry_id(resolved: Resolved) -> str:
    """Identity of a located checkpoint: ``hub_id@commit`` for hub snapshots, else a content digest."""
    if resolved.hub_id is not None:
        return f"{resolved.hub_id}@{resolved.commit}"
    return content_digest(resolved.path)
