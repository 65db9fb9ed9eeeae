"""`fusionbench list`."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.method import param_help
from fusionbench.api.registry import Registry

CONFIG_GROUPS = {"modelpools": "modelpool", "taskpools": "taskpool"}  # kinds with shipped YAML options


def handle(words: list[str]) -> int:
    from fusionbench.api.plugins import REGISTRIES
    from fusionbench.config.compose import packaged_options

    if len(words) > 1:
        raise ConfigError(f"list takes one word, got {len(words)} ({' '.join(words)[:80]}); choose one of: {choices_text(REGISTRIES)}")
    if not words or words[0] not in REGISTRIES:
        given = words[0] if words else ""
        raise ConfigError(f"list what?{did_you_mean(given, REGISTRIES)} Choose one of: {choices_text(REGISTRIES)}")
    kind = words[0]
    registry = REGISTRIES[kind]
    table = Table(title=f"registered {kind}")
    for column in ("name", "description", "reference", "source"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        cls = registry.get(name)
        table.add_row(name, cls.description, cls.reference, registry.source(name))
    console = Console()
    console.print(table)
    if kind == "methods":
        console.print(parameter_table(registry))
        console.print(data_table(registry))
    if kind in CONFIG_GROUPS:
        console.print(f"configs shipped ({CONFIG_GROUPS[kind]}=OPTION): {', '.join(packaged_options(CONFIG_GROUPS[kind]))}")
    return 0


def parameter_table(registry: Registry) -> Table:
    """Every method's parameters with their defaults and meanings (the conventions among them)."""
    table = Table(title="method parameters (method.NAME=VALUE)")
    for column in ("method", "parameter", "default", "meaning"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        for field_name, default, meaning in param_help(registry.get(name).Params):
            table.add_row(name, field_name, str(default), meaning)
    return table


def data_table(registry: Registry) -> Table:
    """What each data-based method reads of the task pool with its default parameters (``DataUse``)."""
    table = Table(title="data read by the data-based methods (defaults; the report of every run records it)")
    for column in ("method", "split", "examples per task", "labels", "test-time adaptation", "computes / pools"):
        table.add_column(column, overflow="fold")
    for name in registry.names():
        cls = registry.get(name)
        use = cls().data_use() if cls.needs_data else None
        if use is not None:
            count = "all" if use.examples_per_task is None else str(use.examples_per_task)
            table.add_row(name, use.split, count, "yes" if use.labels else "no", "yes" if use.test_time_adaptation else "no", cls.data_needs)
    return table


HELP = """\
usage: fusionbench list methods|modelpools|taskpools|families|requirements

Print every registered method, model pool, task pool, model family or requirement with its
one-line description, paper reference and where it comes from (built-in, entry point or plugin);
for methods, also every parameter with its default and meaning (the official implementations'
conventions among them: ties keep, dare strict, tsv factorise and min_rank, iso_cts rounding),
and what each data-based method reads of the task pool: split, examples per task, whether it
reads labels, whether it adapts at test time, what it computes on the data and which pools it takes.
"""
