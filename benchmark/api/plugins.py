"""The registries (methods, model pools, task pools, model families, requirements) and command-line plugin loading."""

from __future__ import annotations

from fusionbench.api.errors import PluginError
from fusionbench.api.families import ModelFamily
from fusionbench.api.method import Method
from fusionbench.api.modelpool import ModelPool
from fusionbench.api.registry import Registry, import_plugin
from fusionbench.api.requirement import Requirement
from fusionbench.api.taskpool import TaskPool

METHODS: Registry[Method] = Registry("method", "fusionbench.methods", Method)
MODELPOOLS: Registry[ModelPool] = Registry("modelpool", "fusionbench.modelpools", ModelPool)
TASKPOOLS: Registry[TaskPool] = Registry("taskpool", "fusionbench.taskpools", TaskPool)
FAMILIES: Registry[ModelFamily] = Registry("family", "fusionbench.modelpools", ModelFamily, "FAMILIES", "fusionbench.families")
REQUIREMENTS: Registry[Requirement] = Registry("requirement", "fusionbench.mini", Requirement, "REQUIREMENTS", "fusionbench.requirements")

REGISTRIES = {"methods": METHODS, "modelpools": MODELPOOLS, "taskpools": TASKPOOLS, "families": FAMILIES, "requirements": REQUIREMENTS}


def load_plugins(specs: list[str]) -> dict[str, list[str]]:
    """Import each plugin (file path or module) and register the classes it defines.

    Returns ``{spec: [registered names]}``; a plugin that defines none of the registered kinds
    is an error.
    """
    repeated = sorted({s for s in specs if specs.count(s) > 1})
    if repeated:
        raise PluginError(f"plugin {repeated[0]!r} is listed more than once in plugins=[...]; name each plugin once")
    loaded = {}
    for spec in specs:
        module = import_plugin(spec)
        names = []
        for registry in REGISTRIES.values():
            names += registry.register_module(module, source=f"plugin {spec}")
        if not names:
            raise PluginError(
                f"plugin {spec!r} defines no method, model pool, task pool, model family or requirement; "
                f"subclass fusionbench.Method (or ModelPool / TaskPool) and give the class a `name`"
            )
        loaded[spec] = names
    return loaded
