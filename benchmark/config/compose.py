"""Config composition with plain OmegaConf: ``group=option`` words, dotted overrides, typed schemas.

A command line such as ``method=ties modelpool=clip_llora method.k=0.2 seed=1`` is read as:

* ``group=option`` (groups: method, modelpool, taskpool) picks ``configs/<group>/<option>.yaml``
  from the package, or a user's YAML file when the option is a path. A method may also
  be named directly by its registry name (its parameters then take their defaults). A few
  names stand for a shipped file with some keys set (``ALIASES``: ``clip_lora`` is
  ``clip_vit_b16`` with ``mode: lora``, ``mini_clip_lora`` is ``mini_clip`` with ``mode: lora``).
* ``group.key=value`` overrides one value inside a group; ``key=value`` sets a top-level key.

Each group is validated in struct mode against the schema of the class it names (a method's
``Params`` dataclass, a pool's ``Config`` dataclass): unknown keys and ill-typed values are
errors that name the key and the valid choices.

One vocabulary in every group: ``type`` names the registered class (``type: ties``,
``type: clip``) and ``name`` is the config's identity (default: the option, or the YAML file's
stem). A method file that names its method with ``name:`` (the old spelling) is refused with
the fix.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import field, fields, make_dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException, ValidationError

from fusionbench.api.errors import ConfigError, choices_text, did_you_mean
from fusionbench.api.modelpool import MODES
from fusionbench.api.plugins import METHODS, MODELPOOLS, TASKPOOLS, load_plugins
from fusionbench.api.registry import Registry
from fusionbench.api.words import names_a_file
from fusionbench.utils.paths import user_path

GROUPS: dict[str, Registry[Any]] = {"method": METHODS, "modelpool": MODELPOOLS, "taskpool": TASKPOOLS}
CLASS_KEY = "type"  # names the registered class in every group; ``name`` is the config's identity


def read_dotlist(words: list[str]) -> DictConfig:
    """``OmegaConf.from_dotlist`` with the YAML parser's errors (broken lists, control characters, huge numbers) as ConfigErrors."""
    parsed = []
    for word in words:
        try:
            parsed.append(OmegaConf.from_dotlist([word]))
        except Exception as exc:  # yaml raises several error types, int() a ValueError
            key, _, value = word.partition("=")
            shown = value if len(value) <= 60 else value[:60] + f"... ({len(value)} characters)"
            reason = " ".join(str(exc).split())[:160]
            raise ConfigError(
                f"cannot read {key}={shown!r} ({type(exc).__name__}: {reason}); write lists as [a,b], "
                f"quote values with special characters, and keep numbers under 4300 digits"
            ) from None
    return OmegaConf.merge(OmegaConf.create(), *parsed)


def value_error(exc: ValidationError, where: str) -> ConfigError:
    """A ConfigError for a value that does not fit its field, in FusionBench's words where OmegaConf's are obscure."""
    text = str(exc).splitlines()[0]
    if "Incompatible value 'None'" in text or "is not Optional" in text:
        return ConfigError(f"{where} needs a value, but the word gave none; write {where}=VALUE or leave the key out")
    if "is not a ListConfig" in text:
        return ConfigError(f"{where} must be a list, written [a,b] (e.g. {where}=[0,0.5,1])")
    return ConfigError(f"invalid value for {where}: {text}")


def check_resolvable(cfg: DictConfig, what: str) -> None:
    """Resolve every ${...} interpolation now, so one that cannot resolve is a ConfigError before any work."""
    try:
        OmegaConf.to_container(cfg, resolve=True)
    except OmegaConfBaseException as exc:
        where = f" at {exc.full_key}" if getattr(exc, "full_key", None) else ""
        raise ConfigError(f"{what}{where} cannot be resolved: {' '.join(str(exc).split())[:200]}") from None


def read_yaml_file(path: Path, what: str) -> Any:
    """``OmegaConf.load(path)``; a file that is not YAML is a ConfigError naming ``what``."""
    try:
        return OmegaConf.load(path)
    except Exception as exc:  # yaml errors come in several types
        raise ConfigError(f"{what} is not valid YAML: {str(exc).splitlines()[0]}") from None


# Names of a shipped file with keys set: option -> (shipped file, keys it sets). Each name of a pool in one mode
# (clip_lora, mini_clip_lora, ...) is its one config file with that mode; the name is the pool's identity in results.
MODE_NAMES = {"clip": "clip_vit_b16", "flan_t5": "flan_t5_base", "mini_clip": "mini_clip", "mini_t5": "mini_t5"}  # name prefix -> file
ALIASES: dict[str, dict[str, tuple[str, dict[str, str]]]] = {
    "modelpool": {f"{prefix}_{mode}": (target, {"mode": mode}) for prefix, target in MODE_NAMES.items() for mode in MODES},
}


def packaged_options(group: str) -> list[str]:
    """Names of the configs shipped for ``group``: its YAML files and the aliases of them."""
    folder = files("fusionbench.configs") / group
    if not folder.is_dir():
        return []
    return sorted([p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")] + list(ALIASES.get(group, {})))


def group_options(group: str) -> list[str]:
    """Every valid option of a group: shipped YAML files, plus registered names for methods."""
    options = set(packaged_options(group))
    if group == "method":
        options.update(METHODS.names())
    return sorted(options)


def load_option(group: str, option: str) -> DictConfig:
    """The raw config an option stands for (before validation)."""
    if names_a_file(option, (".yaml", ".yml")):
        path = user_path(option)
        if not path.is_file():
            what = "is a folder" if path.is_dir() else "does not exist"
            raise ConfigError(f"{group} config file {option!r} {what}; give an existing YAML file or a packaged option")
        raw = read_yaml_file(path, f"{group} config file {option!r}")
        stem = path.stem
    elif option in packaged_options(group):
        target, keys = ALIASES.get(group, {}).get(option, (option, {}))
        raw = OmegaConf.load(str(files("fusionbench.configs") / group / f"{target}.yaml"))
        raw.merge_with(keys)
        stem = option
    elif group == "method" and option in METHODS:
        raw, stem = OmegaConf.create({CLASS_KEY: option}), option
    else:
        valid = group_options(group)
        raise ConfigError(f"unknown {group} {option!r}.{did_you_mean(option, valid)} Valid {group}s: {choices_text(valid)}")
    if not isinstance(raw, DictConfig):
        raise ConfigError(f"{group} config {option!r} must be a mapping of keys to values")
    if not raw.get("name"):
        raw.name = stem
    return raw


def _schema(group: str, raw: DictConfig, option: str) -> type:
    if CLASS_KEY not in raw:
        old = f" ('name' is the config's identity, as in every group: write type: {raw.name})" if group == "method" and raw.name in METHODS else ""
        raise ConfigError(f"{group} config {option!r} has no {CLASS_KEY!r} key naming its class{old}; valid: {choices_text(GROUPS[group].names())}")
    cls = GROUPS[group].get(str(raw[CLASS_KEY]))
    if group == "method":
        identity = [(CLASS_KEY, str, field(default=cls.name)), ("name", str, field(default=cls.name))]
        return make_dataclass(f"{cls.__name__}Config", identity, bases=(cls.Params,))
    return cls.Config


def validate(group: str, raw: DictConfig, option: str, overrides: list[str]) -> DictConfig:
    """Merge ``raw`` and the dotted ``overrides`` into the typed schema of the class it names."""
    schema_cls = _schema(group, raw, option)
    valid_keys = [f.name for f in fields(schema_cls)]
    schema = OmegaConf.structured(schema_cls)
    OmegaConf.set_struct(schema, True)
    for key in valid_keys:  # mapping fields (e.g. per-task paths or definitions) accept new keys
        if OmegaConf.get_type(schema, key) is dict:
            OmegaConf.set_struct(schema[key], False)
    try:
        for key in raw:
            if key not in valid_keys:
                raise ConfigKeyError(str(key))
            _check_shape(schema, raw, str(key), f"{group}.{key}")
        merged = OmegaConf.merge(schema, raw)
        for word in overrides:
            key = word.split("=", 1)[0]
            if key.split(".")[0] not in valid_keys:
                raise ConfigKeyError(key)
            merged = OmegaConf.merge(merged, read_dotlist([word]))
    except ConfigKeyError as exc:
        bad = str(exc.args[0]).splitlines()[0] if exc.args else "?"
        bad = bad.removeprefix("Key '").split("'")[0]
        where = str(getattr(exc, "full_key", "") or bad)
        where = where if where.endswith(bad) else f"{where}.{bad}"
        if "." in where:  # inside a nested entry, e.g. a task definition
            entry = where.rsplit(".", 1)[0]
            raise ConfigError(f"unknown key {group}.{where} for {group} {option!r}; check the field names of {group}.{entry}") from None
        raise ConfigError(
            f"unknown key {group}.{bad} for {group} {option!r}.{did_you_mean(bad, valid_keys)} "
            f"Valid keys: {choices_text(valid_keys)}"
        ) from None
    except ValidationError as exc:
        where = f"{group}.{exc.full_key}" if getattr(exc, "full_key", None) else group
        raise value_error(exc, where) from None
    except (OmegaConfBaseException, TypeError) as exc:  # TypeError: a mapping given for a list, or the reverse
        raise ConfigError(f"invalid {group} config {option!r}: {str(exc).splitlines()[0]}") from None
    OmegaConf.set_struct(merged, True)
    return merged


def _shape(node: Any) -> str:
    return "a mapping" if isinstance(node, (dict, DictConfig)) else "a list" if isinstance(node, (list, ListConfig)) else "a single value"


def _check_shape(schema: DictConfig, raw: DictConfig, key: str, where: str) -> None:
    """A ConfigError when ``raw[key]`` is not the mapping or list the schema's field ``key`` is."""
    if OmegaConf.is_missing(schema, key) or OmegaConf.is_missing(raw, key):
        return
    expected, given = schema[key], raw[key]
    if isinstance(expected, (DictConfig, ListConfig)) and given is not None and _shape(given) != _shape(expected):
        raise ConfigError(f"{where} must be {_shape(expected)}, got {_shape(given)}; see the shipped configs for its layout")


def parse_words(words: list[str]) -> list[tuple[str, str]]:
    """Split ``key=value`` words; a word without ``=`` is an error."""
    pairs = []
    for word in words:
        if "=" not in word or word.startswith("="):
            raise ConfigError(f"argument {word!r} is not of the form key=value (e.g. method=ties or method.k=0.2)")
        key, value = word.split("=", 1)
        pairs.append((key, value))
    return pairs


def compose(words: list[str], top_schema: type, groups: tuple[str, ...] = ("method", "modelpool", "taskpool")) -> DictConfig:
    """Compose the config of one command from its ``key=value`` words.

    ``top_schema`` is a dataclass with the command's top-level keys (one field per group,
    typed ``Any``, plus plain keys such as ``seed``). Plugins named by ``plugins=[...]``
    are loaded first so their names can be used in the same command.
    """
    pairs = parse_words(words)
    top_fields = {f.name for f in fields(top_schema)}
    options: dict[str, str] = {}
    overrides: dict[str, list[str]] = {g: [] for g in groups}
    top_words: list[str] = []
    for key, value in pairs:
        head = key.split(".")[0]
        if key in groups:
            options[key] = value
        elif head in groups:
            overrides[head].append(f"{key.split('.', 1)[1]}={value}")
        elif head in top_fields:
            top_words.append(f"{key}={value}")
        else:
            valid = sorted(set(groups) | top_fields)
            raise ConfigError(f"unknown key {key!r}.{did_you_mean(head, valid)} Valid keys: {choices_text(valid)}")

    top = OmegaConf.structured(top_schema)
    OmegaConf.set_struct(top, True)
    for f in fields(top_schema):
        if str(f.type).startswith("dict"):  # free-form mappings (e.g. a sweep's grid) accept new keys
            OmegaConf.set_struct(top[f.name], False)
    for word in top_words:
        try:
            top = OmegaConf.merge(top, read_dotlist([word]))
        except ValidationError as exc:
            raise value_error(exc, exc.full_key or word.split("=", 1)[0]) from None
        except (OmegaConfBaseException, TypeError) as exc:  # TypeError: a mapping given for a list, or the reverse
            raise ConfigError(f"invalid value for {word.split('=', 1)[0]}: {str(exc).splitlines()[0]} (a mapping where a list or a value belongs, or the reverse)") from None
    if "plugins" in top_fields:
        load_plugins(list(top.plugins))

    if "taskpool" in groups and "taskpool" not in options and "modelpool" in options:
        pool = validate("modelpool", load_option("modelpool", options["modelpool"]), options["modelpool"], overrides["modelpool"])
        check_resolvable(pool, "the modelpool config")  # a bad task set is reported as such, not as an unknown task pool
        if pool.get("taskpool"):  # with the overrides: modelpool.task_set=tall14 picks the pool's taskpool clip_${.task_set}
            options["taskpool"] = str(pool.taskpool)
    resolved: dict[str, Any] = {}
    for group in groups:
        if group not in options:
            raise ConfigError(
                f"missing {group}: name one with {group}=OPTION; valid: {choices_text(group_options(group))}"
            )
        resolved[group] = validate(group, load_option(group, options[group]), options[group], overrides[group])
    with_groups = OmegaConf.merge(OmegaConf.to_container(top), resolved)
    OmegaConf.set_struct(with_groups, True)
    check_resolvable(with_groups, "the configuration")
    check_ranges(with_groups)
    return with_groups


# Top-level keys and the ranges they must lie in (low, high; None: unbounded), checked before any work.
RANGES: dict[str, tuple[float, float | None]] = {
    "seed": (0, 2**63 - 1),
    "workers": (1, None),
    "threads": (0, None),
    "ray.actors": (1, None),
    "ray.cpus_per_actor": (0, None),
    "ray.gpus_per_actor": (0, None),
}


def check_ranges(cfg: DictConfig) -> None:
    """A ConfigError for a top-level number outside its range in RANGES (and for a non-finite one)."""
    for key, (low, high) in RANGES.items():
        value = OmegaConf.select(cfg, key)
        if value is None or isinstance(value, bool):
            continue
        if not math.isfinite(value) or value < low or (high is not None and value > high):
            interval = f"[{low}, {high if high is not None else 'inf'}]"
            raise ConfigError(f"{key}={value!r} is out of range; it must lie in {interval}")


def config_hash(cfg: DictConfig, exclude: tuple[str, ...] = ("output_dir",)) -> str:
    """sha256 of the resolved config's canonical JSON, without keys that don't change results."""
    data = {k: v for k, v in OmegaConf.to_container(cfg, resolve=True).items() if k not in exclude}  # type: ignore[union-attr]
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
