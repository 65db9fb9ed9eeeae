"""The registry: built-ins, entry points, file and module plugins, duplicates, lazy import."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fusionbench.api.errors import PluginError, RegistryError
from fusionbench.api.method import Method
from fusionbench.api.plugins import METHODS, load_plugins
from fusionbench.api.registry import Registry

PLUGIN_SOURCE = '''
from fusionbench import Method, ParamDict


class {cls}(Method):
    name = "{name}"
    description = "test plugin"
    reference = "none"

    def merge(self, pool, data=None):
        return pool.base()
'''


def write_plugin(folder: Path, module: str, name: str, cls: str = "PluginMethod") -> Path:
    path = folder / f"{module}.py"
    path.write_text(PLUGIN_SOURCE.format(name=name, cls=cls))
    return path


def test_builtins_are_listed_and_resolve_to_method_classes() -> None:
    assert {"simple_average", "task_arithmetic"} <= set(METHODS.names())
    cls = METHODS.get("task_arithmetic")
    assert issubclass(cls, Method) and cls.name == "task_arithmetic"
    assert METHODS.source("task_arithmetic") == "built-in"


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(RegistryError, match=r"Did you mean 'simple_average'\?.*Valid methods: .*task_arithmetic"):
        METHODS.get("simple_avrage")


def test_entry_point_plugins_are_discovered_and_imported_lazily(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "ep_plugin_module", "from_entry_point", cls="EntryPointMethod")
    dist = tmp_path / "ep_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fusionbench.methods]\nfrom_entry_point = ep_plugin_module:EntryPointMethod\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry: Registry[Method] = Registry("method", "fusionbench.methods", Method)

    assert "from_entry_point" in registry.names()
    assert "ep_plugin_module" not in sys.modules  # listed, not yet imported
    assert registry.get("from_entry_point").__name__ == "EntryPointMethod"
    assert "ep_plugin_module" in sys.modules
    assert registry.source("from_entry_point").startswith("entry point of ep-plugin")


def test_duplicate_names_are_rejected_with_both_sources() -> None:
    registry: Registry[Method] = Registry("method", "fusionbench.methods", Method)
    with pytest.raises(RegistryError, match=r"two plugins claim the method name 'ties_like'.*built-in.*and plugin x"):
        registry.register("ties_like", "mod:Cls", source="built-in")
        registry.register("ties_like", "mod:Other", source="plugin x")


def test_file_plugin_registers_its_methods(tmp_path: Path) -> None:
    path = write_plugin(tmp_path, "my_method", "file_plugin_method")
    assert load_plugins([str(path)]) == {str(path): ["file_plugin_method"]}
    assert METHODS.get("file_plugin_method").description == "test plugin"


def test_module_plugin_is_imported_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_plugin(tmp_path, "importable_plugin", "module_plugin_method")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_plugins(["importable_plugin"]) == {"importable_plugin": ["module_plugin_method"]}


def test_plugin_file_that_defines_nothing_is_an_error(tmp_path: Path) -> None:
    empty = tmp_path / "empty.py"
    empty.write_text("X = 1\n")
    with pytest.raises(PluginError, match="defines no method"):
        load_plugins([str(empty)])


def test_missing_plugin_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PluginError, match="does not exist"):
        load_plugins([str(tmp_path / "nope.py")])


def test_broken_plugin_file_reports_its_exception(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(PluginError, match="RuntimeError: boom"):
        load_plugins([str(broken)])
