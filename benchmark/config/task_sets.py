"""Named task sets (``fusionbench/data/task_sets.json``) and the two config resolvers that use them.

``${fusionbench.task_set:tall14}`` is a set's task list (task pool configs). A pool config keeps one
file per backbone and generates its ``models`` from its ``task_set`` and the checkpoint pattern of
its ``mode``::

    models: ${fusionbench.checkpoints:${.task_set},${.checkpoints.${.mode}}}

``{task}`` in the pattern is the task's name; with a third argument (a mapping task -> name)
``{name}`` is the checkpoint's own name for the task, for releases that name tasks otherwise.
``${fusionbench.pick:${.mode},{full: a, lora: b}}`` is the entry of the mapping for the mode (the
Flan-T5-base config writes its patterns inline so that its mode names keep their former config hashes).
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any, Optional

from omegaconf import OmegaConf

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean


@cache
def task_sets() -> dict[str, list[str]]:
    """Every named task set: name -> tasks, in their published order."""
    data = json.loads((files("fusionbench") / "data" / "task_sets.json").read_text())
    return {name: tasks for name, tasks in data.items() if not name.startswith("_")}


def task_set(name: str) -> list[str]:
    """The tasks of the set ``name``; an unknown name is a ConfigError naming the valid sets."""
    sets = task_sets()
    if name not in sets:
        raise ConfigError(f"unknown task set {name!r}.{did_you_mean(name, sets)} Valid task sets: {choices_text(sets)}")
    return list(sets[name])


def checkpoints(name: str, pattern: str, names: Optional[Any] = None) -> dict[str, str]:
    """task -> checkpoint location for every task of the set ``name``: ``pattern`` with ``{task}`` (and ``{name}``) filled in."""
    own = OmegaConf.to_container(names) if names is not None and OmegaConf.is_config(names) else dict(names or {})
    tasks = task_set(name)
    missing = [t for t in tasks if own and t not in own]
    if missing:
        covered = [s for s, members in task_sets().items() if set(members) <= set(own)]
        raise ConfigError(
            f"task set {name!r} has task {missing[0]!r}, which this pool's checkpoint names do not list; "
            f"valid task sets here: {choices_text(covered)}"
        )
    return {t: pattern.replace("{task}", t).replace("{name}", str(own.get(t, t))) for t in tasks}


def pick(key: str, choices: Any) -> Any:
    """``choices[key]``; a key the mapping lacks is a ConfigError naming the valid ones."""
    options = OmegaConf.to_container(choices) if OmegaConf.is_config(choices) else dict(choices)
    if key not in options:
        raise ConfigError(f"no entry for {key!r} here; valid: {choices_text(options)}")
    return options[key]


for _name, _resolver in (("fusionbench.task_set", task_set), ("fusionbench.checkpoints", checkpoints), ("fusionbench.pick", pick)):
    if not OmegaConf.has_resolver(_name):
        OmegaConf.register_resolver(_name, _resolver)
