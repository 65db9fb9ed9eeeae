"""The package's layering, read from every module's imports (function-level imports included).

Layers, bottom up: ``api`` (contracts) < ``utils`` < ``models`` < ``config`` < ``engine`` <
applications < ``cli``. Plugins (methods, model pools, task pools) see only the layers below the
engine; applications see each other only through a package's top level, never its modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"fusionbench": "benchmark", "fusionbench.methods": "methods", "fusionbench.modelpools": "modelpools",
           "fusionbench.taskpools": "taskpools", "fusionbench.configs": "configs"}
BASE = {"api": set(), "utils": {"api"}, "models": {"api", "utils"}, "config": {"api", "utils"}}
BASE["engine"] = {"api", "utils", "models", "config"}
PLUGINS = {"methods", "modelpools", "taskpools"}
APPLICATIONS = {"runner", "export", "library", "sweep", "finetune", "analysis", "profiling", "leaderboard", "mini"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package, folder in FOLDERS.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere in its body, as the longest known prefix."""
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(ast.parse(path.read_text())):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            parts = target.split(".")
            match = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in known), None)
            if match and match != name and not name.startswith(match + "."):
                out.add(match)
    return out


def layer(module: str) -> str:
    """The top-level unit of a module: ``api``, ``engine``, ``sweep``, ``methods``, ... (``root`` for fusionbench itself)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "root"


def allowed(source: str, target: str) -> bool:
    src, dst = layer(source), layer(target)
    if src == dst or dst == "root" and target == "fusionbench":
        return src != "api" or dst == "api"
    if src == "root":  # the package's facade: the plugin contracts and the Python API
        return dst in {"api", "library"}
    if src in BASE:
        return dst in BASE[src]
    if src in PLUGINS:
        return dst in {"api", "utils", "models"}
    if src in APPLICATIONS:
        return dst in BASE["engine"] | {"engine"} or (dst in APPLICATIONS and target == f"fusionbench.{dst}")
    if src == "cli":
        return dst not in PLUGINS
    return False


def test_every_import_follows_the_layering() -> None:
    found = modules()
    violations = [f"{src} imports {dst}" for src, path in found.items() for dst in sorted(imports(src, path, set(found))) if not allowed(src, dst)]
    assert violations == []


def test_no_import_cycles() -> None:
    found = modules()
    graph = {name: imports(name, path, set(found)) for name, path in found.items()}
    seen: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, trail: list[str]) -> list[str]:
        seen[node] = 1
        for nxt in sorted(graph[node]):
            if seen.get(nxt) == 1:
                return trail + [node, nxt]
            if nxt not in seen and (cycle := visit(nxt, trail + [node])):
                return cycle
        seen[node] = 2
        return []

    cycles = [cycle for name in sorted(graph) if name not in seen and (cycle := visit(name, []))]
    assert cycles == []


def test_the_layering_rules_catch_an_upward_import() -> None:
    assert not allowed("fusionbench.api.modelpool", "fusionbench.engine.prepare")
    assert not allowed("fusionbench.engine.build", "fusionbench.mini.pools")
    assert not allowed("fusionbench.finetune.loop", "fusionbench.taskpools.glue")
    assert not allowed("fusionbench.mini.pools", "fusionbench.finetune.loop")
    assert allowed("fusionbench.mini.pools", "fusionbench.finetune")
    assert not allowed("fusionbench.methods.ties", "fusionbench.engine.build")
    assert allowed("fusionbench.methods.ties", "fusionbench.methods.common")
    assert allowed("fusionbench", "fusionbench.library") and not allowed("fusionbench", "fusionbench.engine.build")


def test_no_module_is_longer_than_the_limit() -> None:
    long = {name: n for name, path in modules().items() if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_lazy_top_level_exports_the_whole_api() -> None:
    import fusionbench
    import fusionbench.api
    import fusionbench.library

    assert set(fusionbench.__all__) - {"__version__"} == set(fusionbench.api.__all__) | set(fusionbench.library.__all__)
    assert all(getattr(fusionbench, name) is getattr(fusionbench.api, name) for name in fusionbench.api.__all__)
    assert all(getattr(fusionbench, name) is getattr(fusionbench.library, name) for name in fusionbench.library.__all__)
