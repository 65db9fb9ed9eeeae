"""The zero-shot CLIP task pool against independently computed accuracies, its caches and data API."""

from __future__ import annotations

import dataclasses
import json
import math
import os
from importlib.resources import files
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from tiny_data import CallCounter, TinyCLIP, random_images, save_image_dataset, save_image_folder, tiny_clip

from fusionbench.api.plugins import TASKPOOLS
from fusionbench.api.taskpool import TaskPool
from fusionbench.config.compose import compose
from fusionbench.taskpools import vision

CLASSES = ["circle", "square", "triangle"]
TEMPLATES = ["a photo of a {c} .", "a drawing of the {c} ."]


@dataclasses.dataclass
class Top:
    taskpool: Any = None


def make_pool(*words: str) -> TaskPool:
    cfg = compose(list(words), Top, groups=("taskpool",))
    return TASKPOOLS.get(cfg.taskpool.type)(cfg.taskpool)


def write_yaml(path: Path, **config: Any) -> str:
    OmegaConf.save(OmegaConf.create(config), path)
    return str(path)


def corpus(classnames: list[str], templates: list[str]) -> list[str]:
    return [t.format(c=c) for t in templates for c in classnames]


def independent_predictions(tiny: TinyCLIP, images: list[Any], classnames: list[str], templates: list[str]) -> list[int]:
    """Zero-shot predictions one text and one image at a time, straight from the CLIPModel."""
    with torch.no_grad():
        heads = []
        for c in classnames:
            embeddings = []
            for t in templates:
                e = tiny.clip.get_text_features(**tiny.tokenizer([t.format(c=c)], return_tensors="pt")).pooler_output[0]
                embeddings.append(e / e.norm())
            mean = torch.stack(embeddings).mean(0)
            heads.append(mean / mean.norm())
        head = torch.stack(heads)
        predictions = []
        for image in images:
            pixels = tiny.processor(images=[image.convert("RGB")], return_tensors="pt")["pixel_values"]
            f = tiny.clip.get_image_features(pixel_values=pixels).pooler_output[0]
            predictions.append(int((f / f.norm() @ head.T).argmax()))
    return predictions


def half_right(predictions: list[int], classes: int) -> list[int]:
    """Labels that agree with the predictions on even rows and disagree on odd rows."""
    return [p if i % 2 == 0 else (p + 1) % classes for i, p in enumerate(predictions)]


def shapes_task(tmp_path: Path, tiny: TinyCLIP, n_test: int = 11, n_train: int = 20) -> tuple[str, list[int], list[int]]:
    """A saved 3-class dataset whose test labels are half right for ``tiny``; returns (path, labels, predictions)."""
    test_images, train_images = random_images(n_test, seed=1), random_images(n_train, seed=2)
    predictions = independent_predictions(tiny, test_images, CLASSES, TEMPLATES)
    labels = half_right(predictions, len(CLASSES))
    path = save_image_dataset(tmp_path / "shapes", {"train": (train_images, [i % 3 for i in range(n_train)]), "test": (test_images, labels)}, CLASSES)
    return str(path), labels, predictions


def shapes_yaml(tmp_path: Path, dataset: str, **overrides: Any) -> str:
    definition = {"dataset": dataset, "classnames": CLASSES, "templates": TEMPLATES, **overrides.pop("definition", {})}
    return write_yaml(tmp_path / "shapes.yaml", type="clip_vision", catalog=False, definitions={"shapes": definition}, **overrides)


def expected_accuracy(predictions: list[int], labels: list[int]) -> float:
    return sum(p == y for p, y in zip(predictions, labels)) / len(labels)


def test_custom_task_from_yaml_matches_independent_accuracy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vision, "CHUNK_SIZE", 4)  # chunk and batch borders fall in different places
    tiny = tiny_clip(corpus(CLASSES, TEMPLATES))
    dataset, labels, predictions = shapes_task(tmp_path, tiny)
    pool = make_pool(f"taskpool={shapes_yaml(tmp_path, dataset, batch_size=3)}")
    assert pool.all_tasks() == ["shapes"]
    score = pool.evaluate(tiny.model, ["shapes"], "test")["shapes"]
    p = expected_accuracy(predictions, labels)
    assert 0.0 < p < 1.0
    assert score.metric == "accuracy" and score.n == len(labels)
    assert score.value == pytest.approx(p, abs=1e-12)
    assert score.stderr == pytest.approx(math.sqrt(p * (1 - p) / len(labels)))
    assert score.extra["source"] == "test"
    assert pool.predict(tiny.model, "shapes").tolist() == predictions


def test_packaged_configs_evaluate_a_local_copy_of_a_catalog_task(tmp_path: Path) -> None:
    catalog = json.loads((files("fusionbench.taskpools") / "data" / "clip_vision_tasks.json").read_text())
    eurosat = catalog["eurosat"]
    tiny = tiny_clip(corpus(eurosat["classnames"], eurosat["templates"]))
    images = random_images(12, seed=3)
    predictions = independent_predictions(tiny, images, eurosat["classnames"], eurosat["templates"])
    labels = half_right(predictions, 10)
    path = save_image_dataset(tmp_path / "eurosat", {"test": (images, labels)}, eurosat["classnames"])

    paper7 = ["sun397", "stanford-cars", "resisc45", "eurosat", "svhn", "gtsrb", "dtd"]
    assert make_pool("taskpool=clip_vision7").tasks == paper7
    assert make_pool("taskpool=clip_ta8").tasks == paper7[:6] + ["mnist", "dtd"]
    for option in ("clip_vision7", "clip_ta8"):
        pool = make_pool(f"taskpool={option}", f"taskpool.datasets.eurosat={path}", "taskpool.tasks=[eurosat]")
        score = pool.evaluate(tiny.model, ["eurosat"])["eurosat"]
        assert score.value == pytest.approx(expected_accuracy(predictions, labels), abs=1e-12)
        assert score.n == 12
        assert pool.identity()["tasks"]["eurosat"]["dataset"] == str(path)


def test_image_folder_dataset(tmp_path: Path) -> None:
    tiny = tiny_clip(corpus(CLASSES, TEMPLATES))
    images = random_images(9, seed=4)
    predictions = independent_predictions(tiny, images, CLASSES, TEMPLATES)
    labels = half_right(predictions, 3)
    folder = save_image_folder(tmp_path / "folder", {"train": (random_images(6, seed=5), [0, 1, 2, 0, 1, 2]), "test": (images, labels)}, CLASSES)
    pool = make_pool(f"taskpool={shapes_yaml(tmp_path, str(folder))}")
    score = pool.evaluate(tiny.model, ["shapes"])["shapes"]
    assert score.value == pytest.approx(expected_accuracy(predictions, labels), abs=1e-12)
    assert score.n == 9


def test_second_evaluation_skips_all_preprocessing(tmp_path: Path) -> None:
    tiny = tiny_clip(corpus(CLASSES, TEMPLATES))
    dataset, _, _ = shapes_task(tmp_path, tiny)
    preprocess, encode = CallCounter(tiny.model.preprocess), CallCounter(tiny.model.encode_texts)
    model = dataclasses.replace(tiny.model, preprocess=preprocess, encode_texts=encode)
    config = shapes_yaml(tmp_path, dataset)

    first = make_pool(f"taskpool={config}").evaluate(model, ["shapes"])["shapes"]
    assert (preprocess.calls, encode.calls) == (1, len(TEMPLATES))  # one batched call per chunk / per template
    again_same_pool = make_pool(f"taskpool={config}")
    assert again_same_pool.evaluate(model, ["shapes"])["shapes"] == first
    assert again_same_pool.evaluate(model, ["shapes"])["shapes"] == first
    assert (preprocess.calls, encode.calls) == (1, len(TEMPLATES))  # from the disk and memory caches

    other_processor = dataclasses.replace(model, preprocess_fingerprint="another processor")
    assert make_pool(f"taskpool={config}").evaluate(other_processor, ["shapes"])["shapes"] == first
    assert (preprocess.calls, encode.calls) == (2, len(TEMPLATES))
    other_text_tower = dataclasses.replace(model, text_fingerprint="another text tower")
    assert make_pool(f"taskpool={config}").evaluate(other_text_tower, ["shapes"])["shapes"] == first
    assert (preprocess.calls, encode.calls) == (2, 2 * len(TEMPLATES))


def test_batches_and_loss(tmp_path: Path) -> None:
    tiny = tiny_clip(corpus(CLASSES, TEMPLATES))
    dataset, labels, _ = shapes_task(tmp_path, tiny)
    pool = make_pool(f"taskpool={shapes_yaml(tmp_path, dataset)}")
    batches = list(pool.batches("shapes", "test", batch_size=4))
    assert [len(b.images) for b in batches] == [4, 4, 3]
    assert torch.cat([b.labels for b in batches]).tolist() == labels
    assert all(image.mode == "RGB" for b in batches for image in b.images)

    batch = batches[0]
    loss = pool.loss(tiny.model, batch, "shapes")
    with torch.no_grad():
        heads = []
        for c in CLASSES:
            e = F.normalize(tiny.clip.get_text_features(**tiny.tokenizer([t.format(c=c) for t in TEMPLATES], padding=True, return_tensors="pt")).pooler_output, dim=-1)
            heads.append(F.normalize(e.mean(0), dim=-1))
        pixels = tiny.processor(images=batch.images, return_tensors="pt")["pixel_values"]
        image = F.normalize(tiny.clip.get_image_features(pixel_values=pixels).pooler_output, dim=-1)
        expected = F.cross_entropy(tiny.clip.logit_scale.exp() * image @ torch.stack(heads).T, batch.labels)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert tiny.clip.vision_model.embeddings.patch_embedding.weight.grad is not None

    preprocess = CallCounter(tiny.model.preprocess)
    model = dataclasses.replace(tiny.model, preprocess=preprocess, preprocess_fingerprint="counted")
    pool.loss(model, batches[1], "shapes")
    pool.loss(model, batches[1], "shapes")
    assert preprocess.calls == 1  # a batch keeps its pixels per processor


def test_validation_is_a_seeded_holdout_of_train(tmp_path: Path) -> None:
    tiny = tiny_clip(corpus(CLASSES, TEMPLATES))
    dataset, _, _ = shapes_task(tmp_path, tiny, n_train=20)
    config = shapes_yaml(tmp_path, dataset)
    val = make_pool(f"taskpool={config}").selection("shapes", "validation")
    train = make_pool(f"taskpool={config}").selection("shapes", "train")
    assert (val.physical, train.physical) == ("train", "train")
    assert len(val.rows) == 2 and sorted(val.rows + train.rows) == list(range(20))
    assert val.source == "train[held-out 10%, seed 0]" and train.source == "train[without held-out 10%, seed 0]"
    assert make_pool(f"taskpool={config}").selection("shapes", "validation").rows == val.rows  # deterministic
    assert make_pool(f"taskpool={config}", "taskpool.seed=1").selection("shapes", "validation").rows != val.rows
    assert len(make_pool(f"taskpool={config}", "taskpool.holdout_fraction=0.25").selection("shapes", "validation").rows) == 5

    score = make_pool(f"taskpool={config}").evaluate(tiny.model, ["shapes"], "validation")["shapes"]
    assert score.n == 2 and score.extra["source"] == val.source
    identity = make_pool(f"taskpool={config}").identity()
    assert (identity["seed"], identity["holdout_fraction"]) == (0, 0.1)


def test_physical_validation_split_and_limit(tmp_path: Path) -> None:
    tiny = tiny_clip(corpus(CLASSES, TEMPLATES))
    splits = {s: (random_images(n, seed=n), [i % 3 for i in range(n)]) for s, n in (("train", 8), ("validation", 6), ("test", 10))}
    dataset = str(save_image_dataset(tmp_path / "three", splits, CLASSES))
    config = shapes_yaml(tmp_path, dataset)
    assert make_pool(f"taskpool={config}").selection("shapes", "validation").rows == list(range(6))
    assert make_pool(f"taskpool={config}").selection("shapes", "train").rows == list(range(8))
    forced = shapes_yaml(tmp_path, dataset, definition={"validation_split": "holdout"})
    assert make_pool(f"taskpool={forced}").selection("shapes", "validation").physical == "train"

    limited = make_pool(f"taskpool={config}", "taskpool.limit=4")
    sel = limited.selection("shapes", "test")
    assert len(sel.rows) == 4 and sel.rows == sorted(sel.rows) and sel.source == "test[sample of 4, seed 0]"
    assert make_pool(f"taskpool={config}", "taskpool.limit=4").selection("shapes", "test").rows == sel.rows
    score = limited.evaluate(tiny.model, ["shapes"])["shapes"]
    predictions = independent_predictions(tiny, [splits["test"][0][i] for i in sel.rows], CLASSES, TEMPLATES)
    assert score.n == 4
    assert score.value == pytest.approx(expected_accuracy(predictions, [splits["test"][1][i] for i in sel.rows]), abs=1e-12)
    assert limited.identity()["limit"] == 4
    assert sum(len(b.images) for b in limited.batches("shapes", "test", 3, limit=2)) == 2
    assert sum(len(b.images) for b in limited.batches("shapes", "test", 3)) == 4


def test_home_relative_paths_and_local_hub_mirrors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = Path(os.environ["FUSIONBENCH_HOME"])
    tiny = tiny_clip(corpus(CLASSES, TEMPLATES))
    images = random_images(6, seed=9)
    predictions = independent_predictions(tiny, images, CLASSES, TEMPLATES)
    save_image_dataset(home / "mini" / "shapes", {"test": (images, half_right(predictions, 3))}, CLASSES)
    config = shapes_yaml(tmp_path, "$FUSIONBENCH_HOME/mini/shapes")
    pool = make_pool(f"taskpool={config}")
    assert pool.evaluate(tiny.model, ["shapes"])["shapes"].value == pytest.approx(expected_accuracy(predictions, half_right(predictions, 3)))
    files_before = pool.identity()["tasks"]["shapes"]["files"]
    save_image_dataset(home / "mini" / "shapes", {"test": (images, [0] * 6)}, CLASSES)  # the data changes in place
    assert make_pool(f"taskpool={config}").identity()["tasks"]["shapes"]["files"] != files_before

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    eurosat = make_pool("taskpool=clip_vision7").definition("eurosat")
    save_image_dataset(home / "datasets" / "tanganke" / "eurosat", {"test": (images, [0, 1, 2, 3, 4, 5])}, eurosat.classnames)
    assert make_pool("taskpool=clip_vision7", "taskpool.tasks=[eurosat]").selection("eurosat", "test").rows == list(range(6))
