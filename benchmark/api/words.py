"""How a command word names a file or a list, the same for every verb.

* A word names a file (a config, a recipe, a plugin, a profile) when it ends with one of the
  kind's suffixes (``.yaml``, ``.py``), contains a ``/`` or starts with ``.`` or ``~``; otherwise it
  is the name of something registered or shipped. (Model and dataset locations are a different
  question, hub id or local folder, answered where checkpoints are resolved.)
* A list is written ``[a,b]``; where a value is a list of names, ``a,b`` is read the same way.
"""

from __future__ import annotations

from typing import Any

from omegaconf import ListConfig


def names_a_file(word: str, suffixes: tuple[str, ...]) -> bool:
    """Whether ``word`` is a file path rather than a registered or shipped name."""
    return word.endswith(suffixes) or "/" in word or word.startswith((".", "~"))


def word_list(value: Any) -> list[str]:
    """The names of a list value: ``[a,b]`` (a list) or ``a,b`` (one string), stripped, empty ones dropped."""
    if value is None:
        return []
    items = list(value) if isinstance(value, (list, tuple, ListConfig)) else str(value).strip("[]").split(",")
    return [str(item).strip() for item in items if str(item).strip()]
