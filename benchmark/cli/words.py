"""Reading the words of a command line shared by several verbs."""

from __future__ import annotations

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean


def subcommand(words: list[str], verb: str, actions: tuple[str, ...]) -> tuple[str, list[str]]:
    """The action word after ``verb`` and the words that follow it."""
    if not words or words[0] not in actions:
        given = words[0] if words else ""
        raise ConfigError(f"{verb} what?{did_you_mean(given, actions)} Choose one of: {choices_text(actions)}")
    return words[0], words[1:]


def with_group_options(text: str, **fields: str) -> str:
    """``text`` with ``{methods}``, ``{modelpools}`` and ``{taskpools}`` replaced by the valid options of each group (and ``fields``)."""
    from fusionbench.config.compose import group_options

    return text.format(**{f"{g}s": ", ".join(group_options(g)) for g in ("method", "modelpool", "taskpool")}, **fields)
