"""Issue 20, continued: CLIP ViT-B/16 as one config (clip_full / clip_lora / clip_llora kept as its names), the
TALL-masks release on its twenty tasks (task set tall20_digits, EMNIST digits), and the published numbers of the
task_vectors / TALL-masks checkpoint family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import tiny_models as tm
import torch
from safetensors.torch import save_file
from test_backbones_and_families import build, catalog_task, composed
from test_modelpool_open_clip import fresh
from test_modelpool_open_clip import world as world  # noqa: F401  (the tiny open_clip world fixture)
from test_taskpool_vision import expected_accuracy
from tiny_data import save_image_dataset

from fusionbench.api.errors import CheckpointError, DataError
from fusionbench.api.plugins import MODELPOOLS, TASKPOOLS
from fusionbench.cli.main import main
from fusionbench.config.compose import group_options
from fusionbench.config.task_sets import task_set
from fusionbench.leaderboard import published_sets

# The release's folder names for the twelve TALL tasks beyond TA8 (TALL-masks, src/utils/variables_and_paths.py).
RELEASE_NAMES = {"oxford_flowers102": "Flowers102", "pcam": "PCAM", "fer2013": "FER2013", "oxford-iiit-pet": "OxfordIIITPet",
                 "stl10": "STL10", "cifar100": "CIFAR100", "cifar10": "CIFAR10", "food101": "Food101", "fashion_mnist": "FashionMNIST",
                 "emnist_digits": "EMNIST", "kmnist": "KMNIST", "rendered-sst2": "RenderedSST2"}


# ------------------------------------------------------------------ ViT-B/16: one config, old names kept
@pytest.mark.parametrize("mode, suffix", [("full", ""), ("lora", "_lora-16"), ("llora", "_l-lora-16")])
@pytest.mark.parametrize("name", ["ta8", "tall14", "tall20"])
def test_clip_vit_b16_one_config(mode: str, suffix: str, name: str) -> None:
    cfg = composed("modelpool=clip_vit_b16", f"modelpool.mode={mode}", f"modelpool.task_set={name}")
    pool = cfg.modelpool
    assert (pool.type, pool.family, pool.mode, pool.base) == ("clip", "fusionbench-hf", mode, "openai/clip-vit-base-patch16")
    assert list(pool.models) == task_set(name) and cfg.taskpool.name == f"clip_{name}"
    assert pool.models["dtd"] == f"tanganke/clip-vit-base-patch16_dtd{suffix}"


@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_old_b16_names_are_the_one_config_in_their_mode(mode: str) -> None:
    old = composed(f"modelpool=clip_{mode}")
    new = composed("modelpool=clip_vit_b16", f"modelpool.mode={mode}")
    assert old.modelpool.name == f"clip_{mode}" and new.modelpool.name == "clip_vit_b16"
    for key in ("type", "family", "mode", "base", "models", "merge_space"):
        assert old.modelpool[key] == new.modelpool[key], key
    assert old.taskpool.name == "clip_ta8" and {f"clip_{mode}", "clip_vit_b16"} <= set(group_options("modelpool"))
    moved = composed(f"modelpool=clip_{mode}", "modelpool.task_set=tall14", "modelpool.variant=clip-vit-base-patch32")
    assert list(moved.modelpool.models) == task_set("tall14") and moved.taskpool.name == "clip_tall14"
    assert moved.modelpool.models["pcam"].startswith("tanganke/clip-vit-base-patch32_pcam")


@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
def test_clip_vit_b16_offline_stops_with_one_message(mode: str) -> None:
    cfg = composed("modelpool=clip_vit_b16", f"modelpool.mode={mode}").modelpool
    with pytest.raises(CheckpointError, match=rf"base model 'openai/clip-vit-base-patch16' .* hub is unreachable .*mini_clip_{mode}"):
        MODELPOOLS.get("clip")(cfg)


def test_old_b16_name_reads_local_checkpoints_as_the_one_config(tmp_path: Path) -> None:
    """clip_full with its checkpoints elsewhere: the same task vectors as clip_vit_b16 in mode full."""
    base = tm.save_tiny_clip(tmp_path / "base")
    for i, task in enumerate(task_set("ta8")):
        clip = tm.load_clip(base)
        tm.perturb_(clip.vision_model, seed=i + 3)
        clip.save_pretrained(tmp_path / "full" / task)
    words = [f"modelpool.base={base}", f"modelpool.checkpoints.full={tmp_path}/full/{{task}}"]
    old, new = (build(composed(f"modelpool={option}", *words)) for option in ("clip_full", "clip_vit_b16"))
    assert old.tasks == new.tasks == task_set("ta8") and (old.mode, old.family) == ("full", "fusionbench-hf")
    a, b = old.task_vector("svhn"), new.task_vector("svhn")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a) and any(bool(v.abs().sum() > 0) for v in a.values())


# ------------------------------------------------------------------ the TALL-masks release on 14 and 20 tasks
@pytest.mark.parametrize("name", ["tall14", "tall20_digits"])
def test_open_clip_task_vectors_reads_the_release_on_tall_sets(name: str, world: dict[str, Any], isolated_home: Path) -> None:  # noqa: F811
    names = composed("modelpool=open_clip_task_vectors", "modelpool.task_set=tall20_digits").modelpool.checkpoint_names
    assert {t: names[t] for t in RELEASE_NAMES} == RELEASE_NAMES
    base = {n: p.detach().clone() for n, p in fresh(world).visual.named_parameters()}
    expected = {}
    for i, task in enumerate(task_set(name)):
        model = fresh(world)
        tm.perturb_(model.visual, seed=100 + i)
        folder = isolated_home / "checkpoints" / "tall_masks" / "tiny-oc" / f"{names[task]}Val"
        folder.mkdir(parents=True)
        save_file({f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(folder / "nonlinear_finetuned.safetensors"))
        expected[task] = {n: p.detach().clone() for n, p in model.visual.named_parameters()}
    cfg = composed("modelpool=open_clip_task_vectors", f"modelpool.task_set={name}", "modelpool.model_name=tiny-oc",
                   f"modelpool.model_config={world['arch']}", f"modelpool.pretrained={world['base']}")
    assert cfg.taskpool.name == ("clip_tall14" if name == "tall14" else "clip_tall20_digits")
    assert list(cfg.taskpool.tasks) == task_set(name) == list(cfg.modelpool.models)
    pool = build(cfg)
    assert pool.tasks == task_set(name) and len(pool.tasks) == (14 if name == "tall14" else 20)
    last = pool.tasks[-1]
    tau = pool.task_vector(last)
    assert all(torch.equal(tau[n], expected[last][n] - base[n]) for n in expected[last])


def test_open_clip_task_vectors_refuses_letters_naming_the_sets_it_covers(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "method=task_arithmetic", "modelpool=open_clip_task_vectors", "modelpool.task_set=tall20"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:")
    assert "task set 'tall20' has task 'emnist_letters'" in err[0] and "valid task sets here: ta8, tall14, tall20_digits" in err[0]


def test_tall20_digits_differs_from_tall20_in_emnist_only() -> None:
    assert [t for t in task_set("tall20") if t != "emnist_letters"] == [t for t in task_set("tall20_digits") if t != "emnist_digits"]
    assert task_set("tall20").index("emnist_letters") == task_set("tall20_digits").index("emnist_digits")


def test_emnist_digits_from_its_default_folder(isolated_home: Path) -> None:
    """The catalog's emnist_digits is read from $FUSIONBENCH_HOME/datasets/emnist_digits (no hub copy is named)."""
    cfg = composed("modelpool=dummy", "taskpool=clip_tall20_digits", "taskpool.tasks=[emnist_digits]")
    pool = TASKPOOLS.get("clip_vision")(cfg.taskpool)
    definition = pool.definition("emnist_digits")
    assert definition.classnames == [str(d) for d in range(10)] and len(definition.templates) == 1
    tiny, images, predictions, labels = catalog_task("emnist_digits", 12, seed=11)
    with pytest.raises(DataError, match=r"emnist_digits.* does not exist.*taskpool\.datasets\.emnist_digits="):
        pool.evaluate(tiny.model, ["emnist_digits"], "test")
    save_image_dataset(isolated_home / "datasets" / "emnist_digits", {"train": (images, labels), "test": (images, labels)}, None)
    score = TASKPOOLS.get("clip_vision")(cfg.taskpool).evaluate(tiny.model, ["emnist_digits"], "test")["emnist_digits"]
    assert score.value == pytest.approx(expected_accuracy(predictions, labels), abs=1e-12) and score.n == 12


# ------------------------------------------------------------------ published numbers of the release family
def test_release_family_published_rows_fit_their_task_pool() -> None:
    """Each set names a shipped task pool whose tasks cover its per-task numbers; a row giving both a published
    average and per-task numbers agrees with their mean to the source's rounding (AdaMerging's table truncates: the
    mean 69.16 of its task arithmetic row is printed 69.1)."""
    sets = [s for s in published_sets() if s["checkpoint_family"] == "task-vectors-openclip"]
    assert {s["taskpool"] for s in sets} == {"clip_ta8", "clip_tall14", "clip_tall20_digits"}
    for s in sets:
        tasks = task_set(s["taskpool"].removeprefix("clip_"))
        assert s["taskpool"] in group_options("taskpool")
        methods = [r["method"] for r in s["rows"]]
        assert methods[0] == "finetuned" and set(s["rows"][0]["tasks"]) == set(tasks)
        for row in s["rows"]:
            assert row["tasks"] or row["average"] is not None
            assert not row["tasks"] or set(row["tasks"]) == set(tasks), (s["family"], s["taskpool"], row["label"])
            if row["tasks"] and row["average"] is not None:
                assert -0.051 <= sum(row["tasks"].values()) / len(row["tasks"]) - row["average"] < 0.1, row["label"]
    b32 = {(s["taskpool"], r["method"]) for s in sets if s["family"] == "clip-vit-base-patch32" for r in s["rows"]}
    for pool in ("clip_ta8", "clip_tall14", "clip_tall20_digits"):  # zero-shot, TA, TSV-M and CART on every task set
        assert {(pool, m) for m in ("pretrained", "task_arithmetic", "tsv_m", "cart")} <= b32
