"""Paths a user types: ``~`` expanded, and a ``~user`` that names no user an error instead of a crash."""

from __future__ import annotations

import os
from pathlib import Path

from fusionbench.api.errors import ConfigError


def user_path(text: str | os.PathLike[str]) -> Path:
    """``Path(text)`` with ``~`` / ``~user`` expanded; a ConfigError when that user does not exist."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # pathlib: "Could not determine home directory"
        head = str(text).split("/", 1)[0]
        raise ConfigError(f"path {str(text)!r} starts with {head!r}, the home folder of a user that does not exist; give a path without it") from None
