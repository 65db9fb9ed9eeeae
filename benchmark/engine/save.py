"""Writing a merged model into a folder, all or nothing: a staging folder beside it, renamed into place when complete.

The pool writes the model (``ModelPool.save``, in the format ``ModelPool.save_format`` resolved, or
``ModelPool.save_streamed``), this module the model card beside it; every check that can fail on the user's input runs before the merge starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from fusionbench.api.errors import ConfigError, OutputError, did_you_mean
from fusionbench.api.modelpool import SAVE_FORMATS
from fusionbench.utils.paths import check_writable

CARD = "README.md"


def check_save_request(target: Path, overwrite: bool, save_format: str, key: str) -> None:
    """Fail before any work on an unknown ``save_format`` or a ``target`` folder that exists (without ``overwrite``) or cannot be written."""
    if save_format not in SAVE_FORMATS:
        raise ConfigError(f"save_format={save_format!r} is not a format.{did_you_mean(save_format, SAVE_FORMATS)} Valid formats: {', '.join(SAVE_FORMATS)}")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{key}={str(target)!r} is a file; give a folder for the merged model with {key}=DIR")
    if target.exists() and not overwrite:
        raise OutputError(f"{key}={str(target)!r} already exists; choose another folder with {key}=DIR, or pass overwrite=true to replace it")
    check_writable(target.absolute().parent if target.exists() else target, key)


def save_merged(write: Callable[[Path], None], target: Path, card: str) -> Path:
    """Write a model (``write(folder)``, e.g. ``ModelPool.save``) and the model ``card`` into ``target``, atomically.

    The model is written into a staging folder beside ``target`` that is renamed into place when complete; an
    existing ``target`` (allowed by ``check_save_request``) is replaced only then. On any failure the staging
    folder, and any parent folder created for it, is removed.
    """
    parent = target.absolute().parent
    created = parent
    while not created.parent.exists():
        created = created.parent
    made_parent = not parent.exists()
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=parent))
    try:
        write(staging)
        (staging / CARD).write_text(card)
        _share(staging)
        if target.exists():
            _replace(target, staging)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if made_parent:
            shutil.rmtree(created, ignore_errors=True)
        raise
    return target


def _replace(target: Path, staging: Path) -> None:
    """Rename ``staging`` to the existing folder ``target``, whose old content is put back if that fails."""
    retired = Path(tempfile.mkdtemp(prefix=f".{target.name}.replaced-", dir=target.absolute().parent))
    target.rename(retired / target.name)
    try:
        staging.rename(target)
    except BaseException:
        (retired / target.name).rename(target)
        retired.rmdir()
        raise
    shutil.rmtree(retired)


def _share(folder: Path) -> None:
    """Ordinary permissions for a folder ``mkdtemp`` made private and its files (some writers create them 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(folder, 0o777 & ~mask)
    for path in folder.rglob("*"):
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~mask)
