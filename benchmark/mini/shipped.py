"""The pretrained bases shipped in the package, and their checksums.

Pretraining the vision base takes about 15 minutes on 2 CPU cores and the text base about
4, which with the fine-tunes would pass the 5-minute budget of a first run, so each is
trained once by ``fusionbench mini train-base vision|text`` (deterministic: pinned numerics,
fixed seeds) and shipped as ``base_vision/`` (the ``CLIPModel`` in safetensors, its
tokenizer and image processor) and ``base_text/`` (the ``T5ForConditionalGeneration`` and
its tokenizer), each with ``checksums.json`` (SHA-256 of every other file). A world build
copies a base only after every checksum matches.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

from fusionbench.api.errors import DataError

SHIPPED_BASES = {"vision": Path(__file__).parent / "base_vision", "text": Path(__file__).parent / "base_text"}
CHECKSUMS = "checksums.json"
RECORD = "training.json"  # how the base was trained: recipe, seeds, losses, numerics, versions, seconds (not checksummed)
REBUILD = "reinstall fusionbench, or train it again with `fusionbench mini train-base vision` (or `text`, for base_text)"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksums(folder: Path) -> dict[str, str]:
    """Write ``checksums.json`` for every file of ``folder`` but itself and the training record; returns it."""
    sums = {p.name: sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name not in (CHECKSUMS, RECORD)}
    (folder / CHECKSUMS).write_text(json.dumps(sums, indent=2) + "\n")
    return sums


def verify(folder: Path) -> dict[str, str]:
    """The checksums of a base folder after checking every file against them; a DataError names the first mismatch."""
    try:
        sums: dict[str, str] = json.loads((folder / CHECKSUMS).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"the mini base at {folder} has no readable {CHECKSUMS} ({exc}); {REBUILD}") from None
    for name, expected in sums.items():
        path = folder / name
        if not path.is_file():
            raise DataError(f"the mini base at {folder} lacks {name}; {REBUILD}")
        if sha256(path) != expected:
            raise DataError(f"the mini base file {path} does not match its checksum; {REBUILD}")
    return sums


def copy_verified(source: Path, target: Path) -> dict[str, str]:
    """Copy the checksummed files of the base at ``source`` into ``target`` (verified before and after); returns the checksums."""
    sums = verify(source)
    target.mkdir(parents=True, exist_ok=True)
    for name in (*sums, CHECKSUMS):
        shutil.copyfile(source / name, target / name)
    verify(target)
    return sums
