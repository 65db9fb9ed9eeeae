"""Issue 20: one config per backbone (mode and task set as keys), the TALL task sets, checkpoint families
carried into reports and the leaderboard, and the opt-in converter for pickled release checkpoints."""

from __future__ import annotations

import dataclasses
import json
from importlib.resources import files
from pathlib import Path
from typing import Any

import datasets
import pytest
import tiny_models as tm
import torch
from rich.console import Console
from safetensors.torch import load_file, save_file
from test_modelpool_open_clip import fresh, make_pool
from test_modelpool_open_clip import world as world  # noqa: F401  (the tiny open_clip world fixture)
from test_taskpool_vision import corpus, expected_accuracy, half_right, independent_predictions
from tiny_data import random_images, save_image_dataset, tiny_clip

from fusionbench.api.errors import CheckpointError, ConfigError
from fusionbench.api.plugins import MODELPOOLS, TASKPOOLS
from fusionbench.cli.main import main
from fusionbench.config.compose import compose
from fusionbench.engine.report import Report, render
from fusionbench.config.task_sets import task_set
from fusionbench.leaderboard import entries_from_file, problem, published_sets, save
from fusionbench.models.convert import ConvertArgs, convert

TA8 = ["sun397", "stanford-cars", "resisc45", "eurosat", "svhn", "gtsrb", "mnist", "dtd"]
# Label counts of the datasets (their papers / dataset cards), independent of the catalog.
LABELS = {
    "sun397": 397, "stanford-cars": 196, "resisc45": 45, "eurosat": 10, "svhn": 10, "gtsrb": 43, "mnist": 10, "dtd": 47,
    "oxford_flowers102": 102, "pcam": 2, "fer2013": 7, "oxford-iiit-pet": 37, "stl10": 10, "cifar100": 100,
    "cifar10": 10, "food101": 101, "fashion_mnist": 10, "emnist_letters": 26, "kmnist": 10, "rendered-sst2": 2,
    "emnist_digits": 10,
}


@dataclasses.dataclass
class Top:
    method: Any = None
    modelpool: Any = None
    taskpool: Any = None


def composed(*words: str) -> Any:
    return compose(["method=task_arithmetic", *words], Top)


class Enc(torch.nn.Module):
    """Stands in for the releases' pickled ImageEncoder: a module that needs this class to unpickle."""

    def __init__(self, visual: torch.nn.Module) -> None:
        super().__init__()
        self.model = torch.nn.Module()
        self.model.visual = visual


# ------------------------------------------------------------------ task sets and configs
def test_task_sets_extend_each_other() -> None:
    assert task_set("ta8") == TA8
    assert task_set("tall14")[:8] == TA8 and len(task_set("tall14")) == 14
    assert task_set("tall20")[:14] == task_set("tall14") and list(LABELS)[:20] == task_set("tall20")
    with pytest.raises(ConfigError, match="unknown task set 'tall21'.*Valid task sets: glue8, ta8, tall14, tall20"):
        task_set("tall21")


@pytest.mark.parametrize("short, variant", [("b32", "clip-vit-base-patch32"), ("l14", "clip-vit-large-patch14")])
@pytest.mark.parametrize("mode", ["full", "lora", "llora"])
@pytest.mark.parametrize("name", ["ta8", "tall14", "tall20"])
def test_one_clip_config_per_backbone(short: str, variant: str, mode: str, name: str, isolated_home: Path) -> None:
    cfg = composed(f"modelpool=clip_vit_{short}", f"modelpool.mode={mode}", f"modelpool.task_set={name}")
    pool = cfg.modelpool
    assert (pool.type, pool.family, pool.base) == ("clip", "fusionbench-hf", f"openai/{variant}")
    assert list(pool.models) == task_set(name)
    assert cfg.taskpool.name == f"clip_{name}" and list(cfg.taskpool.tasks) == task_set(name)
    expected = {"full": f"tanganke/{variant}_pcam", "lora": f"{isolated_home}/checkpoints/{variant}_pcam_lora-16",
                "llora": f"{isolated_home}/checkpoints/{variant}_pcam_l-lora-16"}[mode]
    if name != "ta8":
        assert pool.models["pcam"] == expected


@pytest.mark.parametrize("mode, expected", [("lora", "tanganke/flan-t5-large_glue-rte_lora-16"),
                                            ("full", "{home}/checkpoints/flan-t5-large_glue-rte"),
                                            ("llora", "{home}/checkpoints/flan-t5-large_glue-rte_l-lora-16")])
def test_flan_t5_large_config(mode: str, expected: str, isolated_home: Path) -> None:
    pool = composed("modelpool=flan_t5_large", f"modelpool.mode={mode}").modelpool
    assert (pool.type, pool.family, pool.base, pool.taskpool) == ("t5", "fusionbench-hf", "google/flan-t5-large", "glue8")
    assert sorted(pool.models) == task_set("glue8") and pool.models.rte == expected.format(home=isolated_home)


def test_open_clip_task_vectors_config(isolated_home: Path) -> None:
    cfg = composed("modelpool=open_clip_task_vectors", "modelpool.model_name=ViT-L-14", "modelpool.task_set=tall14")
    pool = cfg.modelpool
    assert (pool.type, pool.family, cfg.taskpool.name) == ("open_clip", "task-vectors-openclip", "clip_tall14")
    assert list(pool.models) == task_set("tall14")
    assert pool.models["stanford-cars"] == f"{isolated_home}/checkpoints/tall_masks/ViT-L-14/CarsVal/nonlinear_finetuned.safetensors"
    with pytest.raises(ConfigError, match="task set 'tall20' has task 'emnist_letters', which this pool's checkpoint names do not list"):
        composed("modelpool=open_clip_task_vectors", "modelpool.task_set=tall20")


@pytest.mark.parametrize("option, needle", [
    ("clip_vit_b32", "base model 'openai/clip-vit-base-patch32' .* hub is unreachable .*mini_clip_full"),
    ("clip_vit_l14", "base model 'openai/clip-vit-large-patch14' .* hub is unreachable .*mini_clip_full"),
    ("flan_t5_large", "base model 'google/flan-t5-large' .* hub is unreachable .*mini_t5_lora"),
])
def test_hub_pools_offline_stop_with_one_message(option: str, needle: str) -> None:
    cfg = composed(f"modelpool={option}").modelpool
    with pytest.raises(CheckpointError, match=needle):
        MODELPOOLS.get(cfg.type)(cfg)


def test_open_clip_task_vectors_offline_message(isolated_home: Path) -> None:
    cfg = composed("modelpool=open_clip_task_vectors").modelpool
    with pytest.raises(CheckpointError, match=r"checkpoint of task 'sun397' '.*SUN397Val/nonlinear_finetuned.safetensors' does not exist"):
        MODELPOOLS.get("open_clip")(cfg)


def test_bad_task_set_and_family_are_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "method=task_arithmetic", "modelpool=clip_vit_b32", "modelpool.task_set=tall9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and "Valid task sets: glue8, ta8, tall14, tall20" in err[0]
    assert main(["run", "method=task_arithmetic", "modelpool=dummy", "modelpool.family=mine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fusionbench-hf, task-vectors-openclip, local" in err[0]


# ------------------------------------------------------------------ shipped configs on tiny real-format checkpoints
def build(cfg: Any) -> Any:
    return MODELPOOLS.get(cfg.modelpool.type)(cfg.modelpool)


def test_clip_vit_b32_full_reads_save_pretrained_checkpoints_from_its_pattern(tmp_path: Path) -> None:
    base = tm.save_tiny_clip(tmp_path / "base")
    expected = {}
    for i, task in enumerate(TA8):
        clip = tm.load_clip(base)
        tm.perturb_(clip.vision_model, seed=i + 1)
        clip.save_pretrained(tmp_path / "full" / task)
        expected[task] = tm.vision_params(clip)
    cfg = composed("modelpool=clip_vit_b32", f"modelpool.base={base}", f"modelpool.checkpoints.full={tmp_path}/full/{{task}}")
    pool = build(cfg)
    assert (pool.tasks, pool.mode, pool.family) == (TA8, "full", "fusionbench-hf")
    for task in ("sun397", "dtd"):
        got = pool.finetuned(task)
        assert all(torch.equal(got[n], v) for n, v in expected[task].items())


def test_clip_vit_l14_lora_finds_adapters_where_finetune_writes_them(tmp_path: Path, isolated_home: Path) -> None:
    base = tm.save_tiny_clip(tmp_path / "base")
    expected = {}
    for i, task in enumerate(TA8):
        peft_model = tm.lora_model(tm.load_clip(base).vision_model)
        tm.perturb_(peft_model, seed=i, scale=0.3, only=["lora_"])
        peft_model.save_pretrained(isolated_home / "checkpoints" / f"clip-vit-large-patch14_{task}_lora-16")
        expected[task] = tm.adapter_state(peft_model)
    pool = build(composed("modelpool=clip_vit_l14", "modelpool.mode=lora", f"modelpool.base={base}"))
    assert (pool.tasks, pool.mode) == (TA8, "lora")
    got = pool.finetuned("gtsrb")
    assert got.keys() == expected["gtsrb"].keys() and all(torch.equal(got[k], v) for k, v in expected["gtsrb"].items())


def test_flan_t5_large_lora_reads_peft_adapters(tmp_path: Path) -> None:
    base = tm.save_tiny_t5(tmp_path / "base")
    expected = {}
    for i, task in enumerate(task_set("glue8")):
        peft_model = tm.lora_model(tm.load_t5(base), targets=("q", "v"))
        tm.perturb_(peft_model, seed=i, scale=0.3, only=["lora_"])
        peft_model.save_pretrained(tmp_path / "adapters" / task)
        expected[task] = tm.adapter_state(peft_model)
    pool = build(composed("modelpool=flan_t5_large", f"modelpool.base={base}", f"modelpool.checkpoints.lora={tmp_path}/adapters/{{task}}"))
    assert (pool.tasks, pool.mode, pool.family) == (task_set("glue8"), "lora", "fusionbench-hf")
    got = pool.finetuned("rte")
    assert all(torch.equal(got[k], v) for k, v in expected["rte"].items())


def test_open_clip_task_vectors_reads_the_release_layout(world: dict[str, Any], isolated_home: Path) -> None:  # noqa: F811
    names = composed("modelpool=open_clip_task_vectors").modelpool.checkpoint_names
    expected = {}
    for i, task in enumerate(TA8):
        model = fresh(world)
        tm.perturb_(model.visual, seed=i + 1)
        folder = isolated_home / "checkpoints" / "tall_masks" / "tiny-oc" / f"{names[task]}Val"
        folder.mkdir(parents=True)
        # what `fusionbench convert` writes from the release's pickled ImageEncoder: its state dict, CLIP under .model
        save_file({f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}, str(folder / "nonlinear_finetuned.safetensors"))
        expected[task] = {n: p.detach().clone() for n, p in model.visual.named_parameters()}
    cfg = composed("modelpool=open_clip_task_vectors", "modelpool.model_name=tiny-oc", f"modelpool.model_config={world['arch']}",
                   f"modelpool.pretrained={world['base']}")
    pool = build(cfg)
    assert (pool.tasks, pool.family) == (TA8, "task-vectors-openclip")
    got = pool.finetuned("stanford-cars")
    assert all(torch.equal(got[n], v) for n, v in expected["stanford-cars"].items())


def doc_commands(path: Path, after: str) -> list[list[str]]:
    """The `fusionbench run` commands of the first bash block after the heading ``after`` (comments dropped)."""
    block = path.read_text().split(after, 1)[1].split("```bash\n", 1)[1].split("```", 1)[0]
    return [line.split("#")[0].split()[2:] for line in block.splitlines() if line.startswith("fusionbench run")]


@pytest.mark.parametrize("doc, heading", [("README.md", "## Backbones, task sets and checkpoint families"),
                                          ("docs/modelpools.md", "## One config per backbone")])
def test_documented_commands_compose(doc: str, heading: str, isolated_home: Path) -> None:
    commands = doc_commands(Path(__file__).resolve().parents[1] / doc, heading)
    assert len(commands) >= 3
    for words in commands:
        cfg = compose(words, Top)
        assert list(cfg.taskpool.tasks) == list(cfg.modelpool.models) or cfg.modelpool.type == "t5"


# ------------------------------------------------------------------ task pools
def test_catalog_class_names_match_the_datasets_label_counts() -> None:
    catalog = json.loads((files("fusionbench.taskpools") / "data" / "clip_vision_tasks.json").read_text())
    assert list(catalog) == list(LABELS)
    for task, count in LABELS.items():
        entry = catalog[task]
        assert len(entry["classnames"]) == entry["num_classes"] == count, task
        assert len(set(entry["classnames"])) == count, task
        assert entry["templates"] and all("{c}" in t for t in entry["templates"]), task
    for option, name in (("clip_tall14", "tall14"), ("clip_tall20", "tall20")):
        pool = TASKPOOLS.get("clip_vision")(composed(f"modelpool=dummy", f"taskpool={option}").taskpool)
        assert pool.tasks == task_set(name)
    assert (pool.definition("fer2013").image_column, pool.definition("fer2013").label_column) == ("jpg", "cls")
    assert (pool.definition("food101").test_split, pool.definition("food101").validation_split) == ("validation", "holdout")


def catalog_task(task: str, count: int, seed: int) -> tuple[Any, list[Any], list[int], list[int]]:
    """A tiny CLIP that knows ``task``'s prompts, ``count`` images, its independent predictions and labels half of them match."""
    entry = json.loads((files("fusionbench.taskpools") / "data" / "clip_vision_tasks.json").read_text())[task]
    tiny = tiny_clip(corpus(entry["classnames"], entry["templates"]))
    images = random_images(count, seed=seed)
    predictions = independent_predictions(tiny, images, entry["classnames"], entry["templates"])
    return tiny, images, predictions, half_right(predictions, len(entry["classnames"]))


def catalog_pool(option: str, task: str, path: Path) -> Any:
    cfg = composed("modelpool=dummy", f"taskpool={option}", f"taskpool.datasets.{task}={path}", f"taskpool.tasks=[{task}]")
    return TASKPOOLS.get("clip_vision")(cfg.taskpool)


def test_tall_task_on_disk_with_its_split_mapping(tmp_path: Path) -> None:
    """food101 ships no test split: the catalog reports on its validation split, as the TALL papers do."""
    tiny, images, predictions, labels = catalog_task("food101", 10, seed=5)
    path = save_image_dataset(tmp_path / "food101", {"train": (images, labels), "validation": (images, labels)}, None)
    score = catalog_pool("clip_tall20", "food101", path).evaluate(tiny.model, ["food101"], "test")["food101"]
    assert score.value == pytest.approx(expected_accuracy(predictions, labels), abs=1e-12) and score.n == 10
    assert score.extra["source"] == "validation"


def test_boolean_labels_as_patchcamelyon_stores_them(tmp_path: Path) -> None:
    tiny, images, predictions, labels = catalog_task("pcam", 6, seed=8)
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("bool")})
    rows = {"image": images, "label": [bool(y) for y in labels]}
    datasets.DatasetDict(test=datasets.Dataset.from_dict(rows, features=features)).save_to_disk(str(tmp_path / "pcam"))
    pool = catalog_pool("clip_tall14", "pcam", tmp_path / "pcam")
    assert pool.evaluate(tiny.model, ["pcam"], "test")["pcam"].value == pytest.approx(expected_accuracy(predictions, labels), abs=1e-12)
    [batch] = pool.batches("pcam", "test", 6)
    assert batch.labels.tolist() == labels and float(pool.loss(tiny.model, batch, "pcam")) > 0


# ------------------------------------------------------------------ families in results and the leaderboard
def test_family_in_report_and_leaderboard_entry(tmp_path: Path) -> None:
    assert main(["run", "method=simple_average", "modelpool=dummy", f"output_dir={tmp_path / 'run'}"]) == 0
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["modelpool"]["family"] == "local"
    frame = Report.from_dict(report).to_frame()
    assert set(frame["family"]) == {"local"} and list(frame.columns[:4]) == ["method", "modelpool", "family", "split"]
    console = Console(record=True, width=200)
    render(Report.from_dict(report), console)
    assert "simple_average on dummy (local checkpoints) -> dummy" in console.export_text()
    [entry] = entries_from_file(tmp_path / "run")
    assert entry["benchmark"]["checkpoint_family"] == "local" and problem(entry) is None
    board = save(tmp_path / "board.json", [entry])
    assert board["published"] == published_sets() and problem(board, "leaderboard") is None


def test_family_in_sweep_summary_and_its_entry(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    assert main(["sweep", "method=simple_average", "modelpool=dummy", "subsets=pairs", f"output_dir={out}", f"store={tmp_path / 's.sqlite'}"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["modelpool"]["family"] == "local"
    [entry] = entries_from_file(out)
    assert entry["benchmark"]["checkpoint_family"] == "local" and problem(entry) is None


def test_published_sets_name_their_source_and_family() -> None:
    sets = published_sets()
    keys = {(s["family"], s["checkpoint_family"], s["taskpool"]) for s in sets}
    for backbone in ("clip-vit-base-patch32", "clip-vit-base-patch16", "clip-vit-large-patch14"):
        for family in ("fusionbench-hf", "task-vectors-openclip"):
            twenty = "clip_tall20" if family == "fusionbench-hf" else "clip_tall20_digits"  # the release's EMNIST: digits
            assert {(backbone, family, t) for t in ("clip_ta8", "clip_tall14", twenty)} <= keys
    for s in sets:
        for row in s["rows"]:
            assert row["source"] and (row["tasks"] or row["average"] is not None)
        assert all(set(r["tasks"]) <= set(task_set(s["taskpool"].removeprefix("clip_"))) for r in s["rows"])  # as the task pool names them
    b32 = next(s for s in sets if (s["family"], s["checkpoint_family"], s["taskpool"]) == ("clip-vit-base-patch32", "fusionbench-hf", "clip_ta8"))
    ta = next(r for r in b32["rows"] if r["method"] == "task_arithmetic")
    assert ta["average"] == 68.0 and sum(ta["tasks"].values()) / 8 == pytest.approx(68.0, abs=0.05)


def test_shipped_leaderboard_holds_the_published_rows() -> None:
    board = json.loads(Path(__file__).parents[1].joinpath("leaderboard", "leaderboard.json").read_text())
    assert problem(board, "leaderboard") is None and board["published"] == published_sets()
    assert all(e["benchmark"]["checkpoint_family"] == "local" for e in board["entries"])  # the mini world's pools


# ------------------------------------------------------------------ pickled release checkpoints
def test_pickled_checkpoint_refused_then_converted(world: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: F811
    model = fresh(world)
    tm.perturb_(model.visual, seed=7)
    pickled = tmp_path / "CarsVal" / "nonlinear_finetuned.pt"
    pickled.parent.mkdir()
    torch.save(Enc(model.visual), pickled)
    refusal = r"needs arbitrary code to load .*fusionbench convert src=.*finetuned.pt out=.*finetuned.safetensors trust_pickle=true"
    with pytest.raises(CheckpointError, match=refusal):
        make_pool(world, {"cars": pickled})
    converted = pickled.with_suffix(".safetensors")
    with pytest.raises(CheckpointError, match=r"does not exist, but the release's pickle .* does; convert it once"):
        make_pool(world, {"cars": converted})
    assert main(["convert", f"src={pickled}", f"out={converted}"]) == 2
    assert "trust_pickle=true" in capsys.readouterr().err and not converted.exists()
    out, count = convert(ConvertArgs(src=str(pickled), out=str(converted), trust_pickle=True))
    assert out == converted and count == len(load_file(str(converted)))
    pool = make_pool(world, {"cars": converted})
    expected = {n: p.detach() for n, p in model.visual.named_parameters()}
    assert all(torch.equal(pool.finetuned("cars")[n], expected[n]) for n in expected)
    assert main(["convert", f"src={pickled}", f"out={converted}", "trust_pickle=true"]) == 2  # never overwrites
    assert "must be a new .safetensors file" in capsys.readouterr().err
