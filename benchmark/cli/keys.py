"""The ``key=value`` part of every verb's ``--help``, generated from the dataclass schema that reads those words.

A key's line shows the schema's default (or a placeholder when it has none) and the comment on
its line in the schema (``seed: int = 0  # global torch seed``), so help and defaults cannot
disagree and each key is documented once, beside its field. Nested schemas (``ray.actors``,
``lora.r``) are shown with their dotted names; mappings (``grid``) as ``grid.KEY=VALUE``.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import re
import tokenize
from functools import cache
from typing import Any, Iterable

from omegaconf import MISSING

_FIELD_LINE = re.compile(r"^\s+(\w+)\s*:")
_PATH_KEYS = ("out", "output", "store", "save_model")
WIDTH = 22  # column of the meanings


@cache
def field_comments(schema: type) -> dict[str, str]:
    """Field name -> the comment on its line in the class bodies of ``schema`` and its dataclass bases."""
    comments: dict[str, str] = {}
    for cls in reversed(schema.__mro__):
        if not dataclasses.is_dataclass(cls):
            continue
        try:
            source = inspect.getsource(cls)
        except (OSError, TypeError):  # made at run time (make_dataclass): no source
            continue
        lines = source.splitlines()
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                match = _FIELD_LINE.match(lines[token.start[0] - 1])
                if match:
                    comments[match.group(1)] = token.string.lstrip("#").strip()
    return comments


def default_of(field: dataclasses.Field) -> Any:  # type: ignore[type-arg]
    """The field's default value (a factory called), or None when it has none."""
    if field.default is not dataclasses.MISSING:
        return None if field.default == MISSING else field.default
    return field.default_factory() if field.default_factory is not dataclasses.MISSING else None


def shown(field: dataclasses.Field) -> str:  # type: ignore[type-arg]
    """How ``key=...`` shows a field: its default as a command line writes it, else a placeholder of its type."""
    default, kind = default_of(field), str(field.type)
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, (int, float, str)) and default != "":
        return str(default)
    if isinstance(default, list) and default:
        return "[" + ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in default) + "]"
    if field.default is not dataclasses.MISSING and field.default == MISSING:
        return field.name.upper()  # required
    if "bool" in kind:
        return "true|false"
    if "int" in kind:
        return "N"
    if "float" in kind:
        return "X"
    if "list" in kind or (kind == "Any" and field.name.endswith("s")):  # lists of names: tasks, paradigms, targets
        return "[A,B]"
    return "PATH" if field.name in _PATH_KEYS or field.name.endswith("_dir") else "VALUE"


def key_lines(schema: type, skip: Iterable[str] = (), prefix: str = "") -> list[tuple[str, str]]:
    """(``key=value``, meaning) of every field of ``schema`` not in ``skip``, nested schemas expanded."""
    comments, rows = field_comments(schema), []
    for field in dataclasses.fields(schema):
        if field.name in skip:
            continue
        default = default_of(field)
        if dataclasses.is_dataclass(default):
            rows.extend(key_lines(type(default), (), f"{prefix}{field.name}."))
        elif isinstance(default, dict):
            rows.append((f"{prefix}{field.name}.KEY=VALUE", comments.get(field.name, "")))
        else:
            required = field.default is not dataclasses.MISSING and field.default == MISSING
            meaning = ("(required) " if required else "") + comments.get(field.name, "")
            rows.append((f"{prefix}{field.name}={shown(field)}", meaning.strip()))
    return rows


def keys_help(schema: type, skip: Iterable[str] = ("method", "modelpool", "taskpool")) -> str:
    """The help lines of ``schema``'s keys (the config groups left to the verb's own text)."""
    lines = []
    for key, meaning in key_lines(schema, skip):
        lines.append(f"  {key:<{WIDTH}}{meaning}".rstrip() if len(key) < WIDTH else f"  {key}  {meaning}".rstrip())
    return "\n".join(lines)
