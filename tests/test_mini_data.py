"""The mini world's generators: determinism, label balance, schemas and task semantics."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from fusionbench.mini import text_data as td
from fusionbench.mini import text_language as tl
from fusionbench.mini import vision_data as vd


# ------------------------------------------------------------------------ vision
def test_vision_tasks_are_the_seven_attributes_with_distinct_classes() -> None:
    assert list(vd.VISION_TASKS) == ["shape", "colour", "texture", "count", "position", "orientation", "digit"]
    for task in vd.VISION_TASKS.values():
        assert len(set(task.classnames)) == task.num_classes >= 4
        assert 1 <= len(task.templates) <= 3 and all("{c}" in t for t in task.templates)


def test_scenes_and_images_are_deterministic() -> None:
    def draw(seed: int) -> list[bytes]:
        rng = np.random.default_rng(seed)
        return [im.tobytes() for im in vd.iter_images(vd.sample_scenes(rng, 6), rng)]

    assert draw(3) == draw(3)
    assert draw(3) != draw(4)


def test_images_are_32px_rgb() -> None:
    rng = np.random.default_rng(0)
    image = vd.render(vd.sample_scenes(rng, 1)[0], rng)
    assert image.mode == "RGB" and image.size == (vd.IMAGE_SIZE, vd.IMAGE_SIZE)


@pytest.mark.parametrize("task", list(vd.VISION_TASKS))
def test_stratified_scenes_are_label_balanced(task: str) -> None:
    k = vd.VISION_TASKS[task].num_classes
    scenes = vd.sample_scenes(np.random.default_rng(1), 10 * k + 3, stratify=task)
    counts = Counter(s.label(task) for s in scenes)
    assert sorted(counts) == list(range(k))
    assert max(counts.values()) - min(counts.values()) <= 1


def test_shape_is_drawn_in_its_quadrant_in_its_colour() -> None:
    rng = np.random.default_rng(2)
    for scene in vd.sample_scenes(rng, 20):
        pixels = np.asarray(vd.render(scene, rng), dtype=float)
        target = vd._PALETTE[scene.colour]
        closeness = np.linalg.norm(pixels - target, axis=-1) < 40  # pixels of the shape's colour
        ys, xs = np.nonzero(closeness)
        assert len(ys) >= 10
        quadrant = int(np.median(ys) >= 16) * 2 + int(np.median(xs) >= 16)
        assert quadrant == scene.position


def test_captions_describe_scenes_carelessly() -> None:
    rng = np.random.default_rng(3)
    scenes = vd.sample_scenes(rng, 400)
    captions = [vd.caption(s, rng) for s in scenes]
    wrong = Counter()
    for scene, cap in zip(scenes, captions):
        assert cap.claims
        for attribute, value in cap.claims.items():
            assert vd.VISION_TASKS[attribute].classnames[value] in cap.text
            true = scene.label(attribute)
            assert value == vd.annotator_name(attribute, true)  # annotators are consistent
            if value != true:  # only the first K // 3 pairs of classes are swapped
                assert true < 2 * (vd.VISION_TASKS[attribute].num_classes // 3) and value == true ^ 1
                wrong[attribute] += 1
    assert set(wrong) == set(vd.ATTRIBUTES)
    mentioned = Counter(a for c in captions for a in c.claims)
    assert set(mentioned) == set(vd.ATTRIBUTES)  # every attribute is sometimes described


def test_caption_batch_matches_each_scene_and_whatever_else_fits() -> None:
    rng = np.random.default_rng(4)
    scenes = vd.sample_scenes(rng, 32)
    texts, match = vd.caption_batch(scenes, rng)
    assert len(texts) == 32 and match.shape == (32, 32) and match.diagonal().all()
    assert match.sum() > 32  # partial captions fit other scenes too


# -------------------------------------------------------------------------- text
GLUE_FIELDS = {
    "cola": ("sentence",),
    "sst2": ("sentence",),
    "mnli": ("premise", "hypothesis"),
    "mrpc": ("sentence1", "sentence2"),
    "qqp": ("question1", "question2"),
    "rte": ("sentence1", "sentence2"),
    "stsb": ("sentence1", "sentence2"),
}


def test_text_tasks_mirror_glue_fields_and_label_names() -> None:
    assert {t: task.fields for t, task in td.TEXT_TASKS.items()} == GLUE_FIELDS
    assert td.TEXT_TASKS["mnli"].label_names == ("entailment", "neutral", "contradiction")
    assert td.TEXT_TASKS["rte"].label_names == ("entailment", "not_entailment")
    assert td.TEXT_TASKS["stsb"].label_names is None


def test_templates_have_the_glue_tasks_json_shape() -> None:
    for task in td.TEXT_TASKS.values():
        templates = task.templates()
        assert set(templates) == {"paper", "improved"}
        for form in templates.values():
            assert all("{" + f + "}" in str(form["input_text"]) for f in task.fields)
    assert td.TEXT_TASKS["stsb"].templates()["paper"]["target_text"] == "{:.1f}"
    assert td.TEXT_TASKS["stsb"].target(3.5) == "3.5"
    assert td.TEXT_TASKS["mrpc"].target(1, "improved") == "yes"
    json.dumps({t: task.templates() for t, task in td.TEXT_TASKS.items()})  # serialisable


@pytest.mark.parametrize("task", list(td.TEXT_TASKS))
def test_text_examples_are_deterministic_and_balanced(task: str) -> None:
    a = td.sample_examples(task, 60, np.random.default_rng(5))
    assert a == td.sample_examples(task, 60, np.random.default_rng(5))
    assert a != td.sample_examples(task, 60, np.random.default_rng(6))
    assert all(set(e) == {*GLUE_FIELDS[task], "label"} for e in a)
    labels = [e["label"] for e in a]
    if task == "stsb":
        assert all(0.0 <= float(x) <= 5.0 for x in labels) and len(set(labels)) >= 6  # type: ignore[arg-type]
    else:
        counts = Counter(labels)
        assert len(counts) == td.TEXT_TASKS[task].num_labels
        assert max(counts.values()) - min(counts.values()) <= 1


def test_fact_semantics() -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        f = tl.sample_fact(rng)
        assert tl.entails(f, f) and tl.entails(f, tl.drop_modifiers(f, rng))
        for component in ("subj", "obj", "verb", "neg", "number"):
            assert not tl.entails(f, tl.change(f, component, rng))
        assert tl.change(f, "neg", rng).sentiment != f.sentiment
        assert tl.realize(f, tl.Surface(True, 0, 0, 0)) != tl.realize(f, tl.Surface(False, 0, 0, 0))


def test_sentiment_flips_with_negation_and_antonym() -> None:
    rng = np.random.default_rng(8)
    examples = td.sample_examples("sst2", 200, rng)
    negated = [e for e in examples if " not " in str(e["sentence"])]
    assert 0.2 < len(negated) / len(examples) < 0.6
    # the weak labeller ignores negation, so it is wrong exactly on the negated sentences
    assert all((td.weak_label("sst2", e) == e["label"]) == (e not in negated) for e in examples)


def test_paraphrases_and_duplicates_are_reworded() -> None:
    rng = np.random.default_rng(9)
    for task, a, b in (("mrpc", "sentence1", "sentence2"), ("qqp", "question1", "question2")):
        for e in td.sample_examples(task, 100, rng):
            assert e[a] != e[b]


def test_cola_negatives_are_never_realisations() -> None:
    rng = np.random.default_rng(10)
    grammatical = {tl.realize(tl.sample_fact(rng), tl.Surface.sample(rng)) for _ in range(20000)}
    examples = td.sample_examples("cola", 400, rng)
    assert not any(e["label"] == 0 and e["sentence"] in grammatical for e in examples)
    assert sum(e["label"] == 1 and e["sentence"] in grammatical for e in examples) > 0


@pytest.mark.parametrize("task", list(td.TEXT_TASKS))
def test_weak_labellers_are_informative_but_wrong_often(task: str) -> None:
    examples = td.sample_examples(task, 600, np.random.default_rng(11))
    score = td.weak_score(task, examples)
    chance = 0.0 if task == "stsb" else 1.0 / td.TEXT_TASKS[task].num_labels
    assert chance + 0.03 < score < 0.75


def test_rte_hypotheses_are_a_conjunct_or_one_with_its_negation_flipped() -> None:
    for e in td.sample_examples("rte", 200, np.random.default_rng(12)):
        conjuncts = str(e["sentence1"]).removesuffix(" .").split(" and ")
        hypothesis = str(e["sentence2"]).removesuffix(" .")
        assert len(conjuncts) == 2
        if e["label"] == 0:
            assert hypothesis in conjuncts
        else:
            assert hypothesis not in conjuncts
            assert td._noun_list(hypothesis) in [td._noun_list(c) for c in conjuncts]  # same participants
            assert any(("not" in hypothesis.split()) != ("not" in c.split()) for c in conjuncts)


def test_cola_negatives_break_agreement_or_omit_one_word() -> None:
    rng = np.random.default_rng(13)
    lengths = {len(tl.realize(tl.sample_fact(rng), tl.Surface.sample(rng)).split()) for _ in range(5000)}
    for e in td.sample_examples("cola", 300, rng):
        words = str(e["sentence"]).split()
        if e["label"] == 0:
            agreement = any(w in tl.AGREEMENT_SWAP for w in words)
            assert agreement or len(words) + 1 in lengths
