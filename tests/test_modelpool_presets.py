"""Architecture presets: exact shapes without weights (published parameter counts)."""

from __future__ import annotations

import pytest

from fusionbench.api.errors import ConfigError
from fusionbench.models.presets import PRESETS, build_preset, lora_trainable_params


@pytest.mark.parametrize(
    "name, total",
    [  # parameter counts of the published checkpoints (CLIPModel incl. logit_scale; Flan-T5 with its own lm_head)
        ("clip-vit-b32", 151_277_313),
        ("clip-vit-b16", 149_620_737),
        ("clip-vit-l14", 427_616_513),
        ("flan-t5-base", 247_577_856),
        ("flan-t5-large", 783_150_080),
    ],
)
def test_presets_have_the_published_sizes_and_cost_no_memory(name: str, total: int) -> None:
    model = build_preset(name)
    assert sum(p.numel() for p in model.parameters()) == total
    assert all(p.device.type == "meta" for p in model.parameters())


@pytest.mark.parametrize(
    "name, targets, r, expected",
    [  # counts the profiling issue checks (L-LoRA paper, table 3)
        ("clip-vit-b16", ["q_proj", "v_proj"], 16, 589_824),
        ("clip-vit-b16", ["q_proj"], 16, 294_912),
        ("flan-t5-base", ["q", "v"], 8, 884_736),
        ("flan-t5-base", ["q", "v"], 16, 1_769_472),
    ],
)
def test_lora_trainable_parameter_counts(name: str, targets: list[str], r: int, expected: int) -> None:
    assert lora_trainable_params(name, targets, r) == expected


def test_tiny_presets_build_on_cpu_reproducibly_and_unknown_names_fail() -> None:
    a, b = build_preset("tiny-clip", device="cpu", seed=3), build_preset("tiny-clip", device="cpu", seed=3)
    assert all((pa == pb).all() for pa, pb in zip(a.parameters(), b.parameters()))
    assert {"tiny-clip", "tiny-t5", "clip-vit-b16", "flan-t5-base"} <= set(PRESETS)
    with pytest.raises(ConfigError, match="unknown architecture preset 'clip-vit-b17'. Did you mean 'clip-vit-b16'"):
        build_preset("clip-vit-b17")
