"""Architecture presets: exact shapes without weights (published parameter counts)."""

from __future__ import annotations

import pytest

from fusionbench.api.errors import ConfigError
from fusionbench.api.plugins import FAMILIES
from fusionbench.models.names import canonical_name, pretrained_checkpoint
from fusionbench.models.presets import PRESETS, build_preset, lora_trainable_params, preset_name
from fusionbench.profiling.measure import model_config


def profile_option(name: str) -> str:
    """The preset a name's shipped profile config measures (the profile accepts every name of a model)."""
    return str(model_config(name)["preset"])


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
    assert {"tiny-clip", "tiny-t5", "clip-vit-base-patch16", "flan-t5-base"} <= set(PRESETS)
    with pytest.raises(ConfigError, match="unknown architecture preset 'clip-vit-b17'. Did you mean 'clip-vit-b16'"):
        build_preset("clip-vit-b17")


@pytest.mark.parametrize("canonical, aliases", [
    ("clip-vit-base-patch32", ["clip-vit-b32", "openai/clip-vit-base-patch32"]),
    ("clip-vit-base-patch16", ["clip-vit-b16", "openai/clip-vit-base-patch16"]),
    ("clip-vit-large-patch14", ["clip-vit-l14", "openai/clip-vit-large-patch14"]),
    ("flan-t5-large", ["google/flan-t5-large"]),
])
def test_one_canonical_name_per_model_and_its_aliases(canonical: str, aliases: list[str]) -> None:
    assert canonical in PRESETS and not set(aliases) & set(PRESETS)  # aliases are accepted, never listed
    for name in aliases:
        assert canonical_name(name) == canonical == preset_name(name)
        assert pretrained_checkpoint(name) == pretrained_checkpoint(canonical) == next(a for a in [*aliases, canonical] if "/" in a)
        assert profile_option(name) == profile_option(canonical)
    sizes = {sum(p.numel() for p in build_preset(name).parameters()) for name in [canonical, *aliases]}
    assert len(sizes) == 1
    assert canonical_name("/data/my-clip") == pretrained_checkpoint("/data/my-clip") == "/data/my-clip"  # other names pass through


def test_every_family_names_its_models_canonically() -> None:
    for name in FAMILIES.names():
        presets = FAMILIES.get(name).presets
        assert presets and all(canonical_name(p) == p and p in PRESETS for p in presets)
