"""Paths a user types: ``~`` expanded (a ``~user`` that names no user is an error, not a crash), and outputs checked before work."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from fusionbench.api.errors import ConfigError, OutputError

NAME_MAX = 255  # bytes in one file or folder name (Linux, macOS)


def user_path(text: str | os.PathLike[str]) -> Path:
    """``Path(text)`` with ``~`` / ``~user`` expanded; a ConfigError when that user does not exist."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory"
        head = str(text).split("/", 1)[0]
        raise ConfigError(f"path {str(text)!r} starts with {head!r}, the home folder of a user that does not exist; give a path without it") from None


def check_writable(out: Path, key: str = "output_dir", file: bool = False) -> None:
    """Fail before any work when the folder ``out`` (with ``file``: the file ``out``) could not be created or written.

    Nothing is created here; ``key`` is the option that names ``out``, for the message.
    """
    what = "output file" if file else "output directory"
    too_long = next((part for part in out.parts if len(part.encode()) > NAME_MAX), None)
    if too_long is not None:
        raise OutputError(f"{what} {str(out)[:80]!r}... has a name of {len(too_long.encode())} bytes, over the file system's {NAME_MAX}; choose a shorter one with {key}=PATH")
    if file and out.is_dir():
        raise OutputError(f"{what} {str(out)!r} is a folder; give a file path with {key}=PATH")
    existing = out.absolute().parent if file else out.absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir() or not _can_create_in(existing):
        why = f"{existing} is read-only" if existing.is_dir() else ("it is a file" if existing == out.absolute() else "it lies under a file")
        raise OutputError(f"{what} {str(out)!r} is not writable ({why}); choose another with {key}=PATH")


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be created in ``folder``: a real probe (root passes os.access even on /proc), removed at once."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False
