"""On-disk tensor caches of the task pools: preprocessed images, tokenised text, zero-shot heads.

An entry is a folder of safetensors chunks under ``$FUSIONBENCH_HOME/cache/<namespace>/<hash>``,
keyed by the content hash of everything that determines it. It is written to a temporary
folder and renamed into place, so a reader never sees a half-written entry and concurrent
writers of the same key (sweep workers) are harmless.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from safetensors.torch import load_file, save_file

from fusionbench.utils.cache import content_hash, home


def cached_chunks(namespace: str, key: Any, build: Callable[[], Iterable[dict[str, torch.Tensor]]]) -> list[Path]:
    """Paths of the chunk files cached under ``key``, building them with ``build()`` on a miss."""
    entry = home() / "cache" / namespace / content_hash(key)
    if not entry.is_dir():
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{entry.name}."))
        try:
            for i, chunk in enumerate(build()):
                save_file({k: v.detach().cpu().contiguous() for k, v in chunk.items()}, str(tmp / f"{i:05d}.safetensors"))
            os.rename(tmp, entry)
        except OSError:
            if not entry.is_dir():  # not a lost race with another writer of the same entry
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return sorted(entry.glob("*.safetensors"))


def load_chunks(paths: list[Path]) -> dict[str, torch.Tensor]:
    """All chunks concatenated along the first dimension."""
    chunks = [load_file(str(p)) for p in paths]
    return {k: torch.cat([c[k] for c in chunks]) for k in chunks[0]}


def iter_batches(paths: list[Path], batch_size: int) -> Iterator[dict[str, torch.Tensor]]:
    """Batches of exactly ``batch_size`` rows (the last may be smaller), streaming chunk by chunk."""
    pending: list[dict[str, torch.Tensor]] = []
    size = 0
    for path in paths:
        chunk = load_file(str(path))
        pending.append(chunk)
        size += len(next(iter(chunk.values())))
        while size >= batch_size:
            joined = {k: torch.cat([c[k] for c in pending]) for k in chunk}
            yield {k: v[:batch_size] for k, v in joined.items()}
            pending, size = [{k: v[batch_size:] for k, v in joined.items()}], size - batch_size
    if size:
        yield {k: torch.cat([c[k] for c in pending]) for k in pending[0]}
