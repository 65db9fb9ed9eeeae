"""Build what a composed config requires (``requires: NAME`` of its model pool or task pool).

Runs before any pool is constructed, so a constructor never starts a build; a requirement is
a registered :class:`fusionbench.api.requirement.Requirement`, built once (cheap when ready).
"""

from __future__ import annotations

from typing import Optional

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.plugins import REQUIREMENTS
from fusionbench.api.requirement import Requirement


def _requirement(name: str) -> Requirement:
    if name not in REQUIREMENTS:
        valid = REQUIREMENTS.names()
        raise ConfigError(f"unknown requirement {name!r}.{did_you_mean(name, valid)} Valid: {choices_text(valid)}")
    return REQUIREMENTS.get(name)()


def pending(requirement: Optional[str]) -> Optional[Requirement]:
    """The named requirement when it still has to be built, else None (cheap)."""
    if not requirement:
        return None
    artefact = _requirement(requirement)
    return None if artefact.ready() else artefact


def prepare(requirement: Optional[str]) -> None:
    """Build ``requirement`` unless it is already built; an unknown name is a ConfigError with a did-you-mean."""
    artefact = pending(requirement)
    if artefact is not None:
        artefact.build()
