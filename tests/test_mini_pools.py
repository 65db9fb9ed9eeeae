"""The mini world's fine-tuned pools, on a reduced world: built through finetune, loaded by the real pools."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mini_helpers import CONFIGS, reduced_configs
from omegaconf import OmegaConf

from fusionbench.api.errors import ConfigError
from fusionbench.api.modelpool import MODES
from fusionbench.api.params import ParamDict
from fusionbench.api.plugins import REQUIREMENTS
from fusionbench.api.requirement import Requirement
from fusionbench.cli.main import main
from fusionbench.config.compose import compose, group_options, load_option
from fusionbench.engine.prepare import prepare
from fusionbench.mini.pools import MINI_LR, MINI_RECIPES, REDUCED_STEPS, build_pools, definitions, mini_recipe, pools_ready
from fusionbench.runner import RunSchema


@pytest.mark.slow
def test_reduced_vision_pools_build_and_run_through_the_shipped_configs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = build_pools("vision", reduced=True, quiet=True)
    assert pools_ready("vision", reduced=True)
    tasks = list(definitions("vision", root.parent))
    assert len(tasks) == 7
    for mode in MODES:
        assert sorted(p.name for p in (root / mode).iterdir()) == sorted(tasks)
    for mode in ("full", "llora"):
        pool = reduced_configs(tmp_path, f"mini_clip_{mode}", "mini_vision7")
        assert main(["run", "method=task_arithmetic", f"modelpool={pool}", f"output_dir={tmp_path / mode}"]) == 0
        report = json.loads((tmp_path / mode / "report.json").read_text())
        assert list(report["tasks"]) == tasks and report["modelpool"]["mode"] == mode
    assert build_pools("vision", reduced=True, quiet=True) == root  # complete: nothing rebuilt


@pytest.mark.slow
def test_parallel_fine_tunes_write_the_same_checkpoints(isolated_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    serial = build_pools("vision", reduced=True, quiet=True, workers=1)
    monkeypatch.setenv("FUSIONBENCH_HOME", str(tmp_path / "other"))
    (tmp_path / "other" / "mini").mkdir(parents=True)
    shutil.copytree(serial.parent, tmp_path / "other" / "mini" / serial.parent.name, ignore=shutil.ignore_patterns("pools"))
    parallel = build_pools("vision", reduced=True, quiet=True, workers=2)
    assert parallel != serial and json.loads((parallel / "READY").read_text())["workers"] == 2
    for mode in MODES:
        for task in ("shape", "digit"):
            files = sorted(f.name for f in (serial / mode / task).glob("*.safetensors"))
            assert files and files == sorted(f.name for f in (parallel / mode / task).glob("*.safetensors"))
            for name in files:
                assert ParamDict.load(serial / mode / task / name).allclose(ParamDict.load(parallel / mode / task / name), rtol=0.0, atol=0.0)
                assert (serial / mode / task / name).read_bytes() == (parallel / mode / task / name).read_bytes()  # bit for bit, checksummable


@pytest.mark.slow
def test_sweep_worker_processes_load_the_mini_pools_like_the_sweep_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    build_pools("vision", reduced=True, quiet=True)
    pool = reduced_configs(tmp_path, "mini_clip_lora", "mini_vision7")
    rows = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        words = ["sweep", "method=task_arithmetic", f"modelpool={pool}", "subsets=full", "grid.scaling_factor=[0.3,0.6]"]
        assert main([*words, f"workers={workers}", f"store={out}.sqlite", f"output_dir={out}"]) == 0
        summary = json.loads((out / "summary.json").read_text())
        rows[workers] = (summary["subsets"], summary["counts"]["evaluations"])
    assert rows[1] == rows[2] and rows[1][1] > 7


def test_mini_recipes_take_the_mode_learning_rate() -> None:
    for kind in MINI_RECIPES:
        for mode in MODES:
            recipe = mini_recipe(kind, mode)
            assert recipe.lr == MINI_LR[kind][mode] and recipe.steps == MINI_RECIPES[kind].steps
            assert recipe.name == f"{MINI_RECIPES[kind].name}_{mode}" and mini_recipe(kind, mode, reduced=True).steps == REDUCED_STEPS
    assert MINI_LR["vision"]["full"] < MINI_LR["vision"]["lora"] < MINI_LR["vision"]["llora"]


@pytest.mark.parametrize("kind", ["vision", "text"])
def test_adapters_sit_on_every_linear_layer_full_fine_tuning_trains(kind: str) -> None:
    """The shipped base's architecture: LoRA's targets (peft's suffix rule) are exactly the trained linear layers."""
    import transformers
    from torch import nn

    config_dir = Path(__file__).parents[1] / "benchmark" / "mini" / f"base_{kind}"
    if kind == "vision":
        root: nn.Module = transformers.CLIPModel(transformers.CLIPConfig.from_pretrained(config_dir)).vision_model
    else:
        root = transformers.T5ForConditionalGeneration(transformers.T5Config.from_pretrained(config_dir))
    frozen = MINI_RECIPES[kind].frozen
    trained = {n for n, _ in root.named_parameters() if not n.startswith(tuple(frozen))}
    trained_linear = {n for n, m in root.named_modules() if isinstance(m, nn.Linear) and f"{n}.weight" in trained}
    targets = MINI_RECIPES[kind].lora.targets
    adapted = {n for n, m in root.named_modules() if isinstance(m, nn.Linear) and any(n == t or n.endswith(f".{t}") for t in targets)}
    assert adapted == trained_linear and len(adapted) == {"vision": 12, "text": 25}[kind]
    assert all(mini_recipe(kind, mode).lora == MINI_RECIPES[kind].lora for mode in ("lora", "llora"))


def test_unfinished_pools_are_not_ready(tmp_path: Path, isolated_home: Path) -> None:
    assert not pools_ready("vision", reduced=True)
    (isolated_home / "mini" / "vision-seed0-reduced" / "pools").mkdir(parents=True)
    assert not pools_ready("vision", reduced=True)  # no READY marker: never used as complete


def test_requirements_are_built_through_their_registered_class() -> None:
    calls: list[str] = []

    class Fake(Requirement):
        name, description = "fake_world", "a requirement that records its builds"

        def ready(self) -> bool:
            return bool(calls)

        def build(self) -> None:
            calls.append("built")

    REQUIREMENTS.register("fake_world", Fake, source="test")
    prepare("fake_world")
    prepare("fake_world")  # ready now: not built again
    prepare(None)
    assert calls == ["built"]
    assert {"mini_vision", "mini_text"} <= set(REQUIREMENTS.names())
    with pytest.raises(ConfigError, match=r"unknown requirement 'mini_vison'\. Did you mean 'mini_vision'\?"):
        prepare("mini_vison")


def test_shipped_mini_configs_name_their_requirement() -> None:
    for kind, prefix, taskpool in (("vision", "mini_clip", "mini_vision7"), ("text", "mini_t5", "mini_text7")):
        assert OmegaConf.load(CONFIGS / "taskpool" / f"{taskpool}.yaml").requires == f"mini_{kind}"
        for mode in MODES:
            cfg = load_option("modelpool", f"{prefix}_{mode}")
            assert cfg.requires == f"mini_{kind}" and cfg.mode == mode and cfg.taskpool == taskpool and len(cfg.models) == 7


def test_one_mini_config_per_modality_answers_to_the_six_names(isolated_home: Path) -> None:
    """``mini_clip.yaml`` and ``mini_t5.yaml`` with the mode as a key; ``mini_<model>_<mode>`` is that file with the mode set,
    named as typed, each task's checkpoint in the mode's folder of the built world."""
    shipped = sorted(p.stem for p in (CONFIGS / "modelpool").glob("mini_*.yaml"))
    assert shipped == ["mini_clip", "mini_t5"]
    for prefix, world in (("mini_clip", "vision-seed0"), ("mini_t5", "text-seed0")):
        for mode in MODES:
            cfg = compose(["method=ties", f"modelpool={prefix}_{mode}"], RunSchema).modelpool
            assert cfg.name == f"{prefix}_{mode}" and cfg.mode == mode and f"{prefix}_{mode}" in group_options("modelpool")
            assert {task: Path(path) for task, path in cfg.models.items()} == {
                task: isolated_home / "mini" / world / "pools" / mode / task for task in cfg.models}
            by_key = compose(["method=ties", f"modelpool={prefix}", f"modelpool.mode={mode}"], RunSchema).modelpool
            assert OmegaConf.to_container(by_key, resolve=True) == {**OmegaConf.to_container(cfg, resolve=True), "name": prefix}
