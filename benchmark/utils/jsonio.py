"""Text and JSON files written atomically: a reader never sees half a file, a crash never leaves one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON to a temporary file in the same folder, then rename it into place."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=True) + "\n")


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary file in the same folder, then rename it into place."""
    with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False) as tmp:
        tmp.write(text)
    os.chmod(tmp.name, 0o644)  # temporary files are created private; results are meant to be shared
    os.replace(tmp.name, path)
