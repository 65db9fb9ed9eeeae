"""FusionBench's home folder and a content-addressed on-disk cache of small JSON results."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from fusionbench.api.errors import ConfigError
from fusionbench.utils.jsonio import write_json_atomic
from fusionbench.utils.paths import user_path


def home() -> Path:
    """``$FUSIONBENCH_HOME``, default ``~/.cache/fusionbench``; set but empty, or a file, is a ConfigError."""
    value = os.environ.get("FUSIONBENCH_HOME")
    if value is None:
        return Path.home() / ".cache" / "fusionbench"
    if not value.strip():
        raise ConfigError("FUSIONBENCH_HOME is set but empty; unset it (default ~/.cache/fusionbench) or give a folder")
    path = user_path(value)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"FUSIONBENCH_HOME={value!r} is a file, not a folder; unset it or give a folder")
    return path


def content_hash(*parts: Any) -> str:
    """sha256 of the canonical JSON of ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def cached_json(namespace: str, key: Any, compute: Callable[[], Any]) -> Any:
    """Return the JSON value cached under ``key``, computing and storing it on a miss."""
    path = home() / "cache" / namespace / f"{content_hash(key)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError:
            path.unlink()  # a torn file from an old crash; recompute it
    value = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, value)
    return value
