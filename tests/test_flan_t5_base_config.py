"""Issue 20: Flan-T5-base as one config (``flan_t5_base``, the mode as a key); ``flan_t5_full`` / ``flan_t5_lora`` /
``flan_t5_llora`` are its names with the mode set and compose to the resolved config and config hash of their former
files (one file per mode, each listing its eight checkpoints), which the test writes out as they were."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from fusionbench.cli.main import main
from fusionbench.config.compose import compose, config_hash, group_options
from fusionbench.runner import RunSchema

GLUE_TASKS = ["cola", "mnli", "mrpc", "qnli", "qqp", "rte", "sst2", "stsb"]
# The former files' checkpoint entries (configs/modelpool/flan_t5_<mode>.yaml before the change), task as {t}.
FORMER_ENTRIES = {
    "full": "tanganke/${..variant}_glue-{t}",
    "lora": "tanganke/${..variant}_glue-{t}_lora-16",
    "llora": "${oc.env:FUSIONBENCH_HOME,'~/.cache/fusionbench'}/checkpoints/${..variant}_glue-{t}_l-lora-16",
}
OVERRIDES = [(), ("modelpool.variant=flan-t5-large",), ("modelpool.models.cola=/data/cola",),
             ("modelpool.base=/data/base", "modelpool.dtype=bfloat16"), ("taskpool.limit=5", "seed=3")]


def former_file(folder: Path, mode: str) -> Path:
    """The former ``flan_t5_<mode>.yaml``: its keys and its eight checkpoints written out."""
    lines = ["type: t5", "family: fusionbench-hf", f"mode: {mode}"] + (["merge_space: adapter"] if mode == "lora" else [])
    lines += ["variant: flan-t5-base", "base: google/${.variant}", "taskpool: glue8", "models:"]
    lines += [f"  {t}: {FORMER_ENTRIES[mode].replace('{t}', t)}" for t in GLUE_TASKS]
    path = folder / f"flan_t5_{mode}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def composed(pool: str, *words: str) -> tuple[dict, str]:
    cfg = compose(["method=task_arithmetic", f"modelpool={pool}", *words], RunSchema)
    return OmegaConf.to_container(cfg, resolve=True), config_hash(cfg)


@pytest.mark.parametrize("words", OVERRIDES + [("modelpool.merge_space=delta",)])
@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_former_names_compose_to_their_former_configs_and_hashes(mode: str, words: tuple[str, ...], tmp_path: Path, isolated_home: Path) -> None:
    if mode == "full" and words == ("modelpool.merge_space=delta",):
        words = ("modelpool.init_seed=7",)  # delta is refused in full mode (at load); another pool key instead
    former, former_hash = composed(str(former_file(tmp_path, mode)), *words)
    now, now_hash = composed(f"flan_t5_{mode}", *words)
    assert now == former and now_hash == former_hash
    assert now["modelpool"]["name"] == f"flan_t5_{mode}" and list(now["modelpool"]["models"]) == GLUE_TASKS


@pytest.mark.parametrize("mode, entry", [("full", "tanganke/flan-t5-base_glue-rte"), ("lora", "tanganke/flan-t5-base_glue-rte_lora-16"),
                                         ("llora", "{home}/checkpoints/flan-t5-base_glue-rte_l-lora-16")])
def test_one_config_with_the_mode_as_a_key(mode: str, entry: str, isolated_home: Path) -> None:
    by_key, _ = composed("flan_t5_base", f"modelpool.mode={mode}")
    by_name, _ = composed(f"flan_t5_{mode}")
    assert by_key == {**by_name, "modelpool": {**by_name["modelpool"], "name": "flan_t5_base"}}
    pool = by_key["modelpool"]
    assert (pool["type"], pool["family"], pool["mode"], pool["base"], pool["taskpool"]) == ("t5", "fusionbench-hf", mode, "google/flan-t5-base", "glue8")
    assert pool["models"]["rte"] == entry.format(home=isolated_home) and by_key["taskpool"]["name"] == "glue8"
    large, _ = composed("flan_t5_base", f"modelpool.mode={mode}", "modelpool.variant=flan-t5-large")
    assert large["modelpool"]["base"] == "google/flan-t5-large" and large["modelpool"]["models"]["rte"] == entry.format(home=isolated_home).replace("flan-t5-base", "flan-t5-large")


def test_shipped_names_and_the_listing(capsys: pytest.CaptureFixture[str]) -> None:
    shipped = sorted(p.stem for p in (Path(__file__).parents[1] / "configs" / "modelpool").glob("flan_t5*.yaml"))
    assert shipped == ["flan_t5_base", "flan_t5_large"]
    names = {"flan_t5_base", "flan_t5_full", "flan_t5_lora", "flan_t5_llora", "flan_t5_large"}
    assert names <= set(group_options("modelpool"))
    assert main(["list", "modelpools"]) == 0
    listed = " ".join(capsys.readouterr().out.split())
    assert all(f" {name}," in listed for name in names)


def test_unknown_mode_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "method=task_arithmetic", "modelpool=flan_t5_base", "modelpool.mode=qlora"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "no entry for 'qlora' here; valid: full, llora, lora" in err[0]
