"""Build what a composed config requires (``requires: NAME`` of its model pool or task pool).

Runs before any pool is constructed, so a constructor never starts a build; a requirement is
a registered :class:`fusionbench.api.requirement.Requirement`, built once (cheap when ready).
"""

from __future__ import annotations

from typing import Optional

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.plugins import REQUIREMENTS


def prepare(requirement: Optional[str]) -> None:
    """Build ``requirement`` unless it is already built; an unknown name is a ConfigError with a did-you-mean."""
    if not requirement:
        return
    if requirement not in REQUIREMENTS:
        valid = REQUIREMENTS.names()
        raise ConfigError(f"unknown requirement {requirement!r}.{did_you_mean(requirement, valid)} Valid: {choices_text(valid)}")
    artefact = REQUIREMENTS.get(requirement)()
    if not artefact.ready():
        artefact.build()
