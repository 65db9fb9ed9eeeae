"""Library chatter off: FusionBench's own progress bars and tables are the output."""

from __future__ import annotations

import os
import warnings


def quiet_libraries() -> None:
    """Silence transformers' loading bars and deprecation notes, and torch's notice that its own jvp
    decompositions use ``torch.jit.script`` (in this process; worker processes call it too)."""
    warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
