"""Fine-tuning recipes (Tang et al., ICLR 2024, Table 2): the Recipe data type, the paper's recipes, loading and checking them.

One recipe type for every verb: ``fusionbench finetune`` trains with it and ``fusionbench
profile`` measures one step of it (``configs/profile/*.yaml``, section ``recipe:``). LoRA
settings are spelled ``lora.r``, ``lora.alpha``, ``lora.dropout``, ``lora.targets``; the flat
``lora_r``, ``lora_alpha``, ``lora_dropout``, ``lora_targets`` of earlier profile configs are
read as aliases of them (``LEGACY_KEYS``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence, Union

from omegaconf import MISSING, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.plugins import FAMILIES
from fusionbench.api.words import names_a_file
from fusionbench.config.compose import read_dotlist, read_yaml_file
from fusionbench.utils.paths import user_path


@dataclass
class LoraSpec:
    """LoRA adapters (Hu et al., ICLR 2022): rank, alpha (scaling alpha / r), dropout, adapted layers."""

    r: int = 16  # rank
    alpha: float = 32.0  # scaling alpha / r
    dropout: float = 0.1  # LoRA dropout
    targets: list[str] = field(default_factory=lambda: ["q_proj", "v_proj"])  # adapted Linear layers, by name


@dataclass
class Recipe:
    """Everything that determines a fine-tune besides model, task, mode and seed. Data: YAML-able, overridable."""

    family: str = MISSING  # clip | t5: the models the recipe is meant for
    name: str = "custom"  # the recipe's identity (a file's: its stem)
    optimizer: str = "adamw"  # adamw | adam
    lr: float = 1e-5  # peak learning rate
    weight_decay: float = 0.0  # decoupled (adamw) or L2 (adam) weight decay
    schedule: str = "cosine"  # cosine (to zero after warm-up) | constant (after warm-up)
    warmup_ratio: float = 0.0  # share of steps with a linear warm-up
    steps: int = 1000  # optimizer steps
    batch_size: int = 64  # examples per optimizer step
    init_seed: int = 42  # LoRA / L-LoRA adapter init, shared by every task of a pool
    lora: LoraSpec = field(default_factory=LoraSpec)
    frozen: list[str] = field(default_factory=list)  # full mode: name prefixes of parameters kept at the base (in the tuned module)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Recipe:
        """The recipe ``dataclasses.asdict`` wrote (finetune.json, a profile's measured setup)."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and k != "lora"}, lora=LoraSpec(**data["lora"]))


RECIPES: dict[str, Recipe] = {
    # CLIP-ViT-B/16 (Table 2): AdamW, lr 1e-5, weight decay 0.1, warm-up cosine (500 of 6000 steps, as
    # task arithmetic's recipe), batch 64; LoRA r 16, alpha 32, dropout 0.1 on q_proj and v_proj; init seed 42.
    "clip_paper": Recipe(
        family="clip", name="clip_paper", optimizer="adamw", lr=1e-5, weight_decay=0.1, schedule="cosine",
        warmup_ratio=500 / 6000, steps=6000, batch_size=64, init_seed=42, lora=LoraSpec(16, 32.0, 0.1, ["q_proj", "v_proj"]),
    ),
    # Flan-T5-base (Table 2): Adam, 2000 steps, batch 16, lr 1e-5..2e-5 (full) / 1e-5..4e-5 (LoRA): 2e-5 is
    # in both ranges; no schedule is given: constant. LoRA r 16, alpha 32, dropout 0.1 on q and v; init seed 42.
    "t5_paper": Recipe(
        family="t5", name="t5_paper", optimizer="adam", lr=2e-5, weight_decay=0.0, schedule="constant",
        warmup_ratio=0.0, steps=2000, batch_size=16, init_seed=42, lora=LoraSpec(16, 32.0, 0.1, ["q", "v"]),
    ),
}


def _recipe_error(exc: OmegaConfBaseException, what: str, valid: list[str]) -> ConfigError:
    if isinstance(exc, ConfigKeyError):
        bad = exc.full_key or str(exc).splitlines()[0].removeprefix("Key '").split("'")[0]
        return ConfigError(f"unknown recipe key {bad!r} in {what}.{did_you_mean(bad, valid)} Valid keys: {choices_text(valid)}")
    where = f" {exc.full_key}" if isinstance(exc, ValidationError) and exc.full_key else ""
    return ConfigError(f"invalid recipe value{where} in {what}: {str(exc).splitlines()[0]}")


def recipe_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(Recipe) if f.name != "lora"] + [f"lora.{f.name}" for f in dataclasses.fields(LoraSpec)]


LEGACY_KEYS = {"lora_r": "r", "lora_alpha": "alpha", "lora_dropout": "dropout", "lora_targets": "targets"}  # flat -> lora.*


def canonical_keys(data: Mapping[str, Any], what: str) -> dict[str, Any]:
    """``data`` with the flat legacy LoRA keys (``lora_r: 16``) moved into ``lora`` (``lora: {r: 16}``)."""
    result = {k: v for k, v in data.items() if k not in LEGACY_KEYS}
    legacy = {LEGACY_KEYS[k]: v for k, v in data.items() if k in LEGACY_KEYS}
    if legacy:
        lora = result.get("lora") or {}
        if not isinstance(lora, Mapping):
            raise ConfigError(f"{what}: lora must be a mapping (r, alpha, dropout, targets), got {type(lora).__name__}")
        both = sorted(set(legacy) & set(lora))
        if both:
            raise ConfigError(f"{what} sets lora.{both[0]} twice (lora_{both[0]} is its old spelling); keep lora.{both[0]}")
        result["lora"] = {**lora, **legacy}
    return result


def _merged(base: Any, data: Mapping[str, Any], what: str) -> Any:
    """The structured recipe ``base`` with the keys of ``data`` (legacy keys accepted) merged in struct mode."""
    OmegaConf.set_struct(base, True)
    try:
        return OmegaConf.merge(base, canonical_keys(data, what))
    except OmegaConfBaseException as exc:
        raise _recipe_error(exc, what, recipe_keys()) from None


def recipe_from_mapping(data: Mapping[str, Any], base: Recipe, what: str) -> Recipe:
    """``base`` with the keys of ``data`` (a recipe file's content; legacy keys accepted), checked."""
    return load_recipe(base, (), data, what)


def load_recipe(recipe: Union[str, Recipe], overrides: Sequence[str] = (), data: Mapping[str, Any] | None = None, what: str = "") -> Recipe:
    """A recipe by name (``RECIPES``), YAML file path or object, with ``key=value`` overrides (``steps=100``, ``lora.r=8``).

    ``data`` (with ``what`` naming where it comes from, for messages) is merged in before the overrides.
    """
    if isinstance(recipe, Recipe):
        base, what = OmegaConf.structured(recipe), what or f"recipe {recipe.name!r}"
    elif recipe in RECIPES:
        base, what = OmegaConf.structured(RECIPES[recipe]), f"recipe {recipe!r}"
    elif names_a_file(recipe, (".yaml", ".yml")):
        path = user_path(recipe)
        if not path.is_file():
            raise ConfigError(f"recipe file {recipe!r} does not exist; give a YAML file or one of {choices_text(RECIPES)}")
        what = f"recipe file {recipe!r}"
        data = OmegaConf.to_container(read_yaml_file(path, what))  # type: ignore[assignment]
        if not isinstance(data, dict):
            raise ConfigError(f"{what} must be a mapping of recipe keys to values; valid keys: {choices_text(recipe_keys())}")
        base = OmegaConf.structured(Recipe(name=path.stem))
    else:
        raise ConfigError(f"unknown recipe {recipe!r}.{did_you_mean(recipe, RECIPES)} Valid recipes: {choices_text(RECIPES)} (or a YAML file)")
    if data is not None:
        base = _merged(base, data, what)
    OmegaConf.set_struct(base, True)
    try:
        merged = OmegaConf.merge(base, read_dotlist(list(overrides)))
        result: Recipe = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as exc:
        raise _recipe_error(exc, what, recipe_keys()) from None
    check_recipe(result)
    return result


def check_recipe(recipe: Recipe) -> None:
    """One-line ConfigErrors for values no fine-tune can use."""
    problems = [
        (recipe.family not in FAMILIES, f"family={recipe.family!r} (choose {choices_text(FAMILIES.names())})"),
        (recipe.optimizer not in ("adam", "adamw"), f"optimizer={recipe.optimizer!r} (choose adam or adamw)"),
        (recipe.schedule not in ("constant", "cosine"), f"schedule={recipe.schedule!r} (choose constant or cosine)"),
        (not recipe.lr > 0, f"lr={recipe.lr} (must be positive)"),
        (recipe.weight_decay < 0, f"weight_decay={recipe.weight_decay} (must be >= 0)"),
        (not 0 <= recipe.warmup_ratio < 1, f"warmup_ratio={recipe.warmup_ratio} (must be in [0, 1))"),
        (recipe.steps <= 0, f"steps={recipe.steps} (must be positive)"),
        (recipe.batch_size <= 0, f"batch_size={recipe.batch_size} (must be positive)"),
        (recipe.lora.r <= 0, f"lora.r={recipe.lora.r} (must be positive)"),
        (not 0 <= recipe.lora.dropout < 1, f"lora.dropout={recipe.lora.dropout} (must be in [0, 1))"),
        (not recipe.lora.targets, "lora.targets=[] (name the layers to adapt, e.g. [q_proj,v_proj])"),
    ]
    bad = [text for wrong, text in problems if wrong]
    if bad:
        raise ConfigError(f"recipe {recipe.name!r} has invalid {'; '.join(bad)}")
