"""One typed registry for every plugin kind: methods, model pools, task pools, model families, requirements.

Entries come from three places, in this order:

1. built-ins, listed as ``name -> "module:attr"`` strings in a mapping of the package that
   holds them (``BUILTINS`` of ``fusionbench.methods`` / ``fusionbench.modelpools`` /
   ``fusionbench.taskpools``, ``FAMILIES`` of ``fusionbench.modelpools``, ``REQUIREMENTS`` of
   ``fusionbench.mini``), found by name at first use, so this module imports none of them;
2. third-party packages, through an entry-point group (``fusionbench.methods``, ...);
3. plugin files or modules named on the command line (``plugins=[./my_method.py]``).

Entries are imported only when first used. A name may be registered once; a second
claim is an error naming both sources.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Generic, TypeVar

from fusionbench.api.errors import PluginError, RegistryError, choices_text, did_you_mean
from fusionbench.api.words import names_a_file

T = TypeVar("T")


@dataclass
class _Entry:
    target: str | type  # "module:attr" until imported, then the class
    source: str  # where the entry came from, for duplicate errors


class Registry(Generic[T]):
    """Maps names to plugin classes that subclass ``base``."""

    def __init__(self, kind: str, group: str, base: type[T], builtins: str = "BUILTINS", entry_point_group: str | None = None) -> None:
        self.kind = kind  # "method", "modelpool", "taskpool", "family", "requirement"
        self.group = group  # the package holding the built-ins mapping
        self.builtins = builtins  # that mapping's name
        self.entry_point_group = entry_point_group or group
        self.base = base
        self._entries: dict[str, _Entry] = {}
        self._discovered = False

    # ------------------------------------------------------------ discovery
    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        builtins: dict[str, str] = getattr(importlib.import_module(self.group), self.builtins)
        for name, target in builtins.items():
            self.register(name, target, source="built-in")
        for ep in entry_points(group=self.entry_point_group):
            self.register(ep.name, ep.value, source=f"entry point of {ep.dist.name if ep.dist else '?'}")

    def register(self, name: str, target: str | type[T], source: str = "code") -> None:
        """Add an entry; a name already taken raises RegistryError."""
        self._discover()
        if name in self._entries and self._entries[name].target is target:
            return  # the same class loaded again (e.g. one plugin named by two commands)
        if name in self._entries:
            raise RegistryError(
                f"two plugins claim the {self.kind} name {name!r}: {self._entries[name].source} and {source}; "
                f"rename one of them"
            )
        self._entries[name] = _Entry(target, source)

    # --------------------------------------------------------------- lookup
    def names(self) -> list[str]:
        self._discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._entries

    def get(self, name: str) -> type[T]:
        """The class registered as ``name``, imported on first use."""
        self._discover()
        entry = self._entries.get(name)
        if entry is None:
            raise RegistryError(
                f"unknown {self.kind} {name!r}.{did_you_mean(name, self._entries)} "
                f"Valid {self.kind}s: {choices_text(self._entries)}"
            )
        if isinstance(entry.target, str):
            module_name, _, attr = entry.target.partition(":")
            try:
                cls = getattr(importlib.import_module(module_name), attr)
            except (ImportError, AttributeError) as exc:
                raise PluginError(f"{self.kind} {name!r} ({entry.source}) cannot be imported from {entry.target}: {exc}") from exc
            if not (inspect.isclass(cls) and issubclass(cls, self.base)):
                raise PluginError(f"{self.kind} {name!r} ({entry.target}) is not a subclass of {self.base.__name__}")
            entry.target = cls
        return entry.target  # type: ignore[return-value]

    def source(self, name: str) -> str:
        self.get(name)
        return self._entries[name].source

    # -------------------------------------------------------------- plugins
    def register_module(self, module: ModuleType, source: str) -> list[str]:
        """Register every subclass of ``base`` defined in ``module`` (by its ``name``)."""
        found = []
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, self.base) and cls.__module__ == module.__name__ and not inspect.isabstract(cls):
                name = getattr(cls, "name", None)
                if not isinstance(name, str) or not name:
                    raise PluginError(f"{source}: class {cls.__name__} has no `name` attribute; give it one")
                self.register(name, cls, source=source)
                found.append(name)
        return found


def import_plugin(spec: str) -> ModuleType:
    """Import a plugin given as a ``.py`` file path or a dotted module name."""
    if names_a_file(spec, (".py",)):
        try:
            path = Path(spec).expanduser()
        except RuntimeError:  # ~user of a user that does not exist
            raise PluginError(f"plugin file {spec!r} starts with the home folder of a user that does not exist") from None
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise PluginError(f"plugin file {spec!r} {what}; give the path of a .py file or a module name")
        if path.suffix != ".py":
            raise PluginError(f"plugin file {spec!r} is not a Python file; a plugin is a .py file (or an importable module name)")
        module_name = f"fusionbench_plugin_{path.stem}_{abs(hash(str(path.resolve()))):x}"
        if module_name in sys.modules:
            return sys.modules[module_name]
        module_spec = importlib.util.spec_from_file_location(module_name, path)
        assert module_spec is not None and module_spec.loader is not None
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as exc:
            del sys.modules[module_name]
            raise PluginError(f"plugin file {spec!r} failed to import: {type(exc).__name__}: {exc}") from exc
        return module
    try:
        return importlib.import_module(spec)
    except ImportError as exc:
        raise PluginError(f"plugin module {spec!r} cannot be imported ({exc}); give a .py path or an importable module") from exc
