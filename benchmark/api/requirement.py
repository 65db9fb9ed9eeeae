"""Artefacts a config can require (``requires: NAME``), built by FusionBench before first use.

A model pool or task pool config that says ``requires: mini_vision`` names a registered
:class:`Requirement`; the engine builds it (once, with a progress bar) before it constructs
the pool, so constructing a pool never starts a build.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar


class Requirement(ABC):
    """A named artefact (a dataset, a world of checkpoints) that can be checked and built."""

    name: ClassVar[str]
    description: ClassVar[str]
    reference: ClassVar[str] = ""

    @abstractmethod
    def ready(self) -> bool:
        """True when the artefact is complete (cheap)."""

    @abstractmethod
    def build(self) -> None:
        """Build (or finish) the artefact; atomic, so an interrupted build resumes."""

    def tasks(self) -> list[str] | None:
        """The tasks of the pools built on this artefact, when known before building it (None: not known)."""
        return None
