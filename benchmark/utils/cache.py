"""FusionBench's home folder and a content-addressed on-disk cache of small JSON results."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable

from fusionbench.utils.jsonio import write_json_atomic


def home() -> Path:
    """``$FUSIONBENCH_HOME``, default ``~/.cache/fusionbench``."""
    return Path(os.environ.get("FUSIONBENCH_HOME", Path.home() / ".cache" / "fusionbench")).expanduser()


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
