"""User-facing errors. The CLI prints any FusionBenchError as one line and exits non-zero.

A message says what is wrong, why, and how to fix it (with the valid choices where
there are any); it never needs a traceback to be understood.
"""

from __future__ import annotations

import difflib
import traceback
from typing import Iterable, Sequence


class FusionBenchError(Exception):
    """Base class of every error that is the user's to fix."""


class ConfigError(FusionBenchError, ValueError):
    """A command-line word or configuration value is invalid."""


class RegistryError(FusionBenchError, KeyError):
    """An unknown or duplicate method / model pool / task pool name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class PluginError(FusionBenchError):
    """A plugin file or module could not be loaded or defines nothing usable."""


class ParamMismatchError(FusionBenchError, ValueError):
    """Two ParamDicts (or a checkpoint and its base) disagree on names or shapes."""


class OutputError(FusionBenchError):
    """The output directory cannot be created or written."""


class DataError(FusionBenchError):
    """A dataset is missing, unreadable or inconsistent with its task definition."""


class NonFiniteError(FusionBenchError, ValueError):
    """Parameters hold NaN or Inf (a merge diverged, or a checkpoint is corrupt)."""


class MethodError(FusionBenchError):
    """A method's ``merge`` raised, or returned something that is not the pool's parameters."""


class CheckpointError(FusionBenchError):
    """A model checkpoint is missing, unreadable, unsafe or inconsistent with its pool."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) during a command that keeps a resume artefact; the message says how to resume or remove it."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean X?' for the closest choice, or '' when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


def choices_text(choices: Iterable[str]) -> str:
    return ", ".join(sorted(choices)) or "(none)"


def check_unique(tasks: Sequence[str], owner: str) -> None:
    """A ConfigError naming the first task ``owner`` (e.g. "pool 'dummy'") lists more than once."""
    repeated = sorted({t for t in tasks if list(tasks).count(t) > 1})
    if repeated:
        raise ConfigError(f"{owner} lists task {repeated[0]!r} more than once; name each task once")


def raised_at(exc: BaseException) -> str:
    """``file:line`` of the innermost frame of ``exc``'s traceback, for one-line messages."""
    frames = traceback.extract_tb(exc.__traceback__)
    return f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
