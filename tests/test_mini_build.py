"""Building the mini worlds (reduced sizes): artefacts, loadability, caching, atomicity, tokenizers, pretraining."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Iterator

import datasets
import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, CLIPModel, CLIPProcessor, T5ForConditionalGeneration

from fusionbench.api.errors import DataError
from fusionbench.mini import bases, build, shipped, text_data
from fusionbench.mini import vision_world as vw
from fusionbench.mini.vision_tasks import VISION_TASKS
from fusionbench.mini.tokenization import learn_bpe_merges, train_clip_tokenizer, train_t5_tokenizer


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("fbhome")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUSIONBENCH_HOME", str(root))
        yield root


@pytest.fixture(autouse=True)
def world_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test of this module sees the module's home (conftest gives each test a fresh one)."""
    monkeypatch.setenv("FUSIONBENCH_HOME", str(home))
    return home


@pytest.fixture(scope="module")
def vision_world(home: Path) -> Path:
    return build.build_vision_world(seed=0, reduced=True, quiet=True)


@pytest.fixture(scope="module")
def text_world(home: Path) -> Path:
    return build.build_text_world(seed=0, reduced=True, quiet=True)


def _digest(folder: Path) -> dict[str, str]:
    """Hashes of every file a build writes except its manifest and base training record (which record timings):
    data, task definitions, tokenizer and pretrained weights."""
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file() and f.name not in ("manifest.json", "training.json")
    }


# ------------------------------------------------------------------ the worlds
def test_vision_world_layout_and_datasets(vision_world: Path, home: Path) -> None:
    assert vision_world == home / "mini" / "vision-seed0-reduced"
    tasks = json.loads((vision_world / "tasks.json").read_text())
    assert list(tasks) == list(VISION_TASKS)
    size = build.SIZES[("vision", True)]
    for name, spec in tasks.items():
        dd = datasets.load_from_disk(str(vision_world / spec["dataset"]))
        assert {s: len(dd[s]) for s in dd} == {"train": size.train, "validation": size.validation, "test": size.test}
        assert isinstance(dd["test"].features["image"], datasets.Image)
        assert dd["test"].features["label"].names == spec["classnames"]
        assert dd["test"][0]["image"].size == (32, 32)


def test_clip_base_loads_with_its_processor(vision_world: Path) -> None:
    model = CLIPModel.from_pretrained(vision_world / "clip")
    processor = CLIPProcessor.from_pretrained(vision_world / "clip")
    dd = datasets.load_from_disk(str(vision_world / "data" / "shape"))
    images = [dd["test"][i]["image"] for i in range(4)]
    inputs = processor(text=["a photo of a ring.", "a photo of a bar."], images=images, return_tensors="pt", padding=True)
    with torch.no_grad():
        out = model(**inputs)
    assert out.logits_per_image.shape == (4, 2)
    # the build's fast conversion equals the processor's own preprocessing
    fast = bases.pixel_values(np.stack([np.asarray(im) for im in images]), processor.image_processor)
    torch.testing.assert_close(fast, inputs.pixel_values)


def test_text_world_layout_and_datasets(text_world: Path) -> None:
    spec = json.loads((text_world / "tasks.json").read_text())["tasks"]
    assert list(spec) == list(text_data.TEXT_TASKS)
    for name, task in spec.items():
        dd = datasets.load_from_disk(str(text_world / task["dataset"]))
        assert set(dd) == {"train", "validation", "test"}
        row = dd["train"][0]
        assert set(row) == {*task["fields"], "label", "idx"}
        if task["label_names"]:
            assert dd["train"].features["label"].names == task["label_names"]
        assert set(task["templates"]) == {"paper", "improved"}


def test_t5_base_loads_and_generates(text_world: Path) -> None:
    model = T5ForConditionalGeneration.from_pretrained(text_world / "t5")
    tok = AutoTokenizer.from_pretrained(text_world / "t5")
    assert (tok.pad_token_id, tok.eos_token_id, tok.unk_token_id) == (0, 1, 2)
    assert (model.config.pad_token_id, model.config.eos_token_id, model.config.decoder_start_token_id) == (0, 1, 0)
    enc = tok(["sst2 sentence: the cat likes the ball ."], return_tensors="pt")
    assert enc.input_ids[0, -1].item() == tok.eos_token_id
    out = model.generate(**enc, max_new_tokens=4)
    assert out.shape[0] == 1


def test_manifest_records_scores_and_timings(vision_world: Path, text_world: Path) -> None:
    for world, tasks in ((vision_world, VISION_TASKS), (text_world, text_data.TEXT_TASKS)):
        manifest = build.read_manifest(world)
        assert manifest is not None and manifest["spec"]["reduced"] is True
        assert set(manifest["pretrained"]) == set(tasks)
        assert all(0.0 <= s["value"] <= 1.0 or s["metric"] == "spearman" for s in manifest["pretrained"].values())
        assert manifest["seconds"]["total"] > 0 and manifest["cpu_seconds"]["base"] > 0
        assert manifest["numerics"]["pinned"] is True  # built in a process with pinned numerics


def test_status_reuse_and_clean(vision_world: Path, text_world: Path) -> None:
    rows = {r["name"]: r for r in build.status()}
    assert rows["vision-seed0-reduced"]["complete"] and rows["text-seed0-reduced"]["complete"]
    before = (vision_world / "manifest.json").stat().st_mtime_ns
    assert build.build_vision_world(seed=0, reduced=True, quiet=True) == vision_world  # reused, not rebuilt
    assert (vision_world / "manifest.json").stat().st_mtime_ns == before
    assert build.require_world("text", reduced=True) == text_world
    with pytest.raises(DataError, match="not built"):
        build.require_world("text", seed=99, reduced=True)


def test_a_failed_build_leaves_nothing_behind(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(fill: object, kind: str, root: Path, *args: object) -> dict[str, object]:
        (root / "half-written").write_text("x")
        raise RuntimeError("boom")

    monkeypatch.setattr(build, "run_pinned", broken)
    with pytest.raises(RuntimeError, match="boom"):
        build.build_vision_world(seed=7, reduced=True, quiet=True)
    assert not build.world_dir("vision", 7, True).exists()
    assert not [p for p in (home / "mini").iterdir() if p.name.startswith(".")]


def test_builds_are_deterministic(vision_world: Path, text_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(tmp_path))
    assert _digest(build.build_text_world(seed=0, reduced=True, quiet=True)) == _digest(text_world)
    other = build.build_text_world(seed=1, reduced=True, quiet=True)
    assert _digest(other) != _digest(text_world)
    removed = build.clean(kind="text", seed=1)
    assert removed == [other] and not other.exists()
    assert build.world_dir("text", 0, True).exists()


@pytest.mark.parametrize("kind, folder", [("vision", "clip"), ("text", "t5")])
def test_a_reduced_world_trains_its_base_and_checksums_it(kind: str, folder: str, vision_world: Path, text_world: Path) -> None:
    world = vision_world if kind == "vision" else text_world
    manifest = build.read_manifest(world)
    assert manifest is not None and manifest["base"]["source"] == "trained in this build"
    assert set(shipped.verify(world / folder)) == {p.name for p in (world / folder).iterdir()} - {shipped.CHECKSUMS, shipped.RECORD}


@pytest.mark.parametrize("kind", ["vision", "text"])
def test_the_shipped_base_matches_its_checksums_and_the_full_recipe(kind: str) -> None:
    folder = shipped.SHIPPED_BASES[kind]
    shipped.verify(folder)
    record = json.loads((folder / shipped.RECORD).read_text())
    size = build.SIZES[(kind, False)]
    examples = record["recipe"]["examples" if kind == "vision" else "prompts_per_task"]
    assert (examples, record["recipe"]["steps"], record["recipe"]["batch_size"]) == (size.pretrain_examples, size.pretrain_steps, size.batch_size)
    assert record["recipe"]["seed"] == 0 and record["numerics"]["pinned"] is True
    assert record["pretrain_loss"]["last"] < record["pretrain_loss"]["first"] - 0.5
    if kind == "vision":
        model = CLIPModel.from_pretrained(folder)
        assert model.config.vision_config.num_hidden_layers == 3 and model.config.projection_dim == 64
    else:
        t5 = T5ForConditionalGeneration.from_pretrained(folder)
        assert (t5.config.num_layers, t5.config.num_decoder_layers, t5.config.d_model) == (2, 2, 64)
        assert record["recipe"]["train_examples_per_task"] == size.train


def test_a_base_whose_file_changed_is_refused(vision_world: Path, tmp_path: Path) -> None:
    copy = tmp_path / "base"
    shipped.copy_verified(vision_world / "clip", copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    with pytest.raises(DataError, match="model.safetensors does not match its checksum"):
        shipped.verify(copy)
    (copy / "config.json").unlink()
    with pytest.raises(DataError, match="lacks config.json"):
        shipped.verify(copy)


def test_vision_data_is_deterministic(vision_world: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FUSIONBENCH_HOME", str(tmp_path))
    again = build.build_vision_world(seed=0, reduced=True, quiet=True)
    assert _digest(again) == _digest(vision_world)


# -------------------------------------------------------------- tokenizers
def test_clip_tokenizer_round_trips_and_reloads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    tok = train_clip_tokenizer(vw.tokenizer_corpus(vw.PretrainingSet.sample(300, rng), rng))
    assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (0, 1, 1)
    text = "a photo of a falling red ring in the top left with the number 7."
    ids = tok(text).input_ids
    assert ids[0] == 0 and ids[-1] == 1
    assert tok.decode(ids, skip_special_tokens=True).replace(" .", ".") == text
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)(text).input_ids == ids


def test_t5_tokenizer_has_t5_special_ids_and_sentinels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    corpus = [str(e["sentence"]) for e in text_data.sample_examples("sst2", 300, rng)] + ["positive", "negative"]
    tok = train_t5_tokenizer(corpus, vocab_size=300)
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "</s>", "<unk>"]
    assert tok.convert_tokens_to_ids("<extra_id_0>") == len(tok) - 1
    ids = tok("the cat likes the ball .").input_ids
    assert ids[-1] == 1 and tok.decode(ids, skip_special_tokens=True) == "the cat likes the ball ."
    tok.save_pretrained(tmp_path)
    assert AutoTokenizer.from_pretrained(tmp_path)("positive").input_ids == tok("positive").input_ids


def test_clip_tokenizer_is_a_function_of_its_corpus() -> None:
    rng = np.random.default_rng(2)
    corpus = vw.tokenizer_corpus(vw.PretrainingSet.sample(300, rng), rng)
    first, second = train_clip_tokenizer(corpus), train_clip_tokenizer(list(reversed(corpus)))
    assert first.backend_tokenizer.to_str() == second.backend_tokenizer.to_str()  # vocabulary and merges


def test_bpe_merges_the_most_frequent_pair_first_and_breaks_ties_by_order() -> None:
    words = Counter({("l", "o", "w</w>"): 5, ("l", "o", "t</w>"): 2, ("a", "b</w>"): 2, ("c", "d</w>"): 2})
    # (l, o) occurs 7 times; then (lo, w</w>) 5; then the three pairs of count 2, smallest first
    assert learn_bpe_merges(words, 10) == [("l", "o"), ("lo", "w</w>"), ("a", "b</w>"), ("c", "d</w>"), ("lo", "t</w>")]


def test_t5_tokenizer_is_a_function_of_its_corpus_with_one_token_per_known_word() -> None:
    rng = np.random.default_rng(1)
    corpus = [str(e["sentence"]) for e in text_data.sample_examples("sst2", 200, rng)]
    first, second = train_t5_tokenizer(corpus), train_t5_tokenizer(list(corpus))
    assert first.get_vocab() == second.get_vocab()
    sentence = corpus[0]
    assert first.tokenize(sentence) == ["\u2581" + word for word in sentence.split()]
    unknown = first("zebra").input_ids  # not in the corpus: spelled out from characters
    assert len(unknown) > 2 and first.decode(unknown, skip_special_tokens=True) == "zebra"


# ------------------------------------------------------------------- pretraining
def test_clip_pretraining_lowers_the_loss() -> None:
    rng = np.random.default_rng(0)
    data = vw.PretrainingSet.sample(96, rng)
    tok = train_clip_tokenizer(vw.tokenizer_corpus(data, rng))
    model = bases.new_clip(tok, seed=0)
    pixels = bases.pixel_values(data.images, bases.clip_image_processor())
    captions = lambda idx, r: vw.caption_batch(data, idx, r)  # noqa: E731
    losses = bases.pretrain_clip(model, tok, pixels, captions, bases.TrainSchedule(30, 32, 2e-3, locked_text=0.3), seed=0)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.2


def test_t5_pretraining_lowers_the_loss() -> None:
    rng = np.random.default_rng(0)
    task = text_data.TEXT_TASKS["sst2"]
    pairs = [(task.input_text(e), task.target(float(e["label"]))) for e in text_data.sample_examples("sst2", 128, rng)]  # type: ignore[arg-type]
    tok = train_t5_tokenizer([s for p in pairs for s in p], vocab_size=200)
    model = bases.new_t5(tok, seed=0)
    losses = bases.pretrain_t5(model, tok, lambda n, r: [pairs[i] for i in r.choice(len(pairs), n)], bases.TrainSchedule(30, 16, 3e-3), seed=0)
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])


def test_span_corruption_hides_spans_behind_sentinels() -> None:
    words = "the small cat does not like the red ball in the park .".split()
    source, target = bases.span_corruption(words, np.random.default_rng(0))
    assert "<extra_id_0>" in source and target.startswith("<extra_id_0>")
    # filling each sentinel with its span restores the sentence
    spans = {}
    for chunk in target.split("<extra_id_")[1:]:
        k, span = chunk.split(">", 1)
        spans[k] = span.strip()
    restored = source
    for k, span in spans.items():
        restored = restored.replace(f"<extra_id_{k}>", span)
    assert restored.split() == words
