"""The mini world's generators: determinism, label balance, schemas and task semantics."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from scipy import ndimage

from fusionbench.mini import text_data as td
from fusionbench.mini import text_language as tl
from fusionbench.mini import vision_domains as vdom
from fusionbench.mini import vision_world as vw
from fusionbench.mini.vision_tasks import COLOURS, PALETTE, VISION_TASKS


# ------------------------------------------------------------------------ vision
def test_vision_tasks_are_seven_with_distinct_classes() -> None:
    assert list(VISION_TASKS) == ["shape", "colour", "texture", "count", "position", "orientation", "digit"]
    for task in VISION_TASKS.values():
        assert len(set(task.classnames)) == task.num_classes >= 4
        assert 1 <= len(task.templates) <= 3 and all("{c}" in t for t in task.templates)


def test_images_are_deterministic_32px_rgb_per_class() -> None:
    def draw(seed: int) -> np.ndarray:
        return np.stack([vdom.images(t, np.arange(VISION_TASKS[t].num_classes), np.random.default_rng(seed), (0.0, 1.0), (0.0, 1.0)) [0] for t in VISION_TASKS])

    assert draw(3).shape == (7, 32, 32, 3) and draw(3).dtype == np.uint8
    assert np.array_equal(draw(3), draw(3)) and not np.array_equal(draw(3), draw(4))


@pytest.mark.parametrize("task", list(VISION_TASKS))
def test_task_splits_are_label_balanced(task: str) -> None:
    k = VISION_TASKS[task].num_classes
    images, labels = vw.task_split(task, 10 * k + 3, np.random.default_rng(1))
    counts = Counter(labels.tolist())
    assert len(images) == 10 * k + 3 and sorted(counts) == list(range(k))
    assert max(counts.values()) - min(counts.values()) <= 1


@pytest.mark.parametrize("k", range(5))
def test_a_count_image_shows_k_plus_one_stars(k: int) -> None:
    rng = np.random.default_rng(k)
    for _ in range(5):
        image = vdom.render("count", k, rng, hard=0.0, novel=0.0).astype(float).mean(-1)
        assert ndimage.label(image > 120)[1] == k + 1


def test_a_flower_has_its_class_colour() -> None:
    rng = np.random.default_rng(2)
    yellow = COLOURS.index("yellow")  # every flower's centre is yellow too
    for k in range(len(COLOURS)):
        image = vdom.render("colour", k, rng, hard=0.0, novel=0.0).reshape(-1, 3).astype(float)
        distance = np.linalg.norm(image[:, None] - PALETTE[None], axis=-1)
        nearest = distance.argmin(1)  # each pixel's nearest petal colour
        counts = Counter(nearest[distance.min(1) < 60].tolist())
        assert max((j for j in counts if j != yellow or k == yellow), key=counts.__getitem__) == k


@pytest.mark.parametrize("k", range(4))
def test_a_grating_runs_at_its_class_angle(k: int) -> None:
    image = vdom.render("orientation", k, np.random.default_rng(k), hard=0.0, novel=0.0).astype(float).mean(-1)
    spectrum = np.abs(np.fft.fftshift(np.fft.fft2(image - image.mean())))
    fy, fx = np.unravel_index(spectrum.argmax(), spectrum.shape)
    angle = np.degrees(np.arctan2(fy - 16, fx - 16)) % 180  # direction across the stripes
    assert min(abs(angle - 45 * k), 180 - abs(angle - 45 * k)) < 12


def test_unnamed_classes_are_never_named_and_named_ones_often() -> None:
    rng = np.random.default_rng(3)
    for task, spec in VISION_TASKS.items():
        for k, name in enumerate(spec.classnames):
            captions = [vw.caption(task, k, rng) for _ in range(200)]
            named = [text for text, true_of in captions if true_of == (k,)]
            assert all(name in text for text in named)
            assert all(text == vw.DOMAIN_ONLY[task] and len(true_of) == spec.num_classes for text, true_of in captions if true_of != (k,))
            if k in vw.UNNAMED[task]:
                assert not named
            else:
                assert abs(len(named) / 200 - vw.NAMED_SHARE) < 0.12


def test_caption_batch_matches_each_image_and_only_images_of_its_domain() -> None:
    rng = np.random.default_rng(4)
    data = vw.PretrainingSet.sample(64, rng)
    texts, match = vw.caption_batch(data, np.arange(64), rng)
    assert len(texts) == 64 and match.shape == (64, 64) and bool(match.diagonal().all())
    same_domain = data.tasks[:, None] == data.tasks[None, :]
    assert not bool((match.numpy() & ~same_domain).any())
    assert int(match.sum()) > 64  # domain-only captions fit every image of their domain


def test_the_tokenizer_corpus_spells_every_class_name_unnamed_ones_included() -> None:
    rng = np.random.default_rng(5)
    corpus = " ".join(vw.tokenizer_corpus(vw.PretrainingSet.sample(32, rng), rng))
    assert all(name in corpus for task in VISION_TASKS.values() for name in task.classnames)


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
        f = tl.sample_fact(rng, tl.DOMAINS["school"])
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
    grammatical = {tl.realize(tl.sample_fact(rng, tl.DOMAINS[td.TEXT_TASKS["cola"].domain]), tl.Surface.sample(rng)) for _ in range(20000)}
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
    lengths = {len(tl.realize(tl.sample_fact(rng, tl.DOMAINS[td.TEXT_TASKS["cola"].domain]), tl.Surface.sample(rng)).split()) for _ in range(5000)}
    for e in td.sample_examples("cola", 300, rng):
        words = str(e["sentence"]).split()
        if e["label"] == 0:
            agreement = any(w in tl.AGREEMENT_SWAP for w in words)
            assert agreement or len(words) + 1 in lengths


def test_each_text_task_speaks_of_its_own_domain() -> None:
    domains = [set(d.nouns) for d in tl.DOMAINS.values()]
    assert sum(len(d) for d in domains) == len(set().union(*domains))  # disjoint
    assert sorted(t.domain for t in td.TEXT_TASKS.values()) == sorted(tl.DOMAINS)  # one domain per task
    rng = np.random.default_rng(14)
    for name, task in td.TEXT_TASKS.items():
        own = set(tl.DOMAINS[task.domain].nouns)
        for e in td.sample_examples(name, 100, rng):
            nouns = {n for text in td.sentences(e) for n in td._noun_list(text)}
            assert nouns and nouns <= own


def test_pretraining_targets_are_gold_or_weak_and_split_where_the_weak_label_is_wrong() -> None:
    examples = td.sample_examples("sst2", 4000, np.random.default_rng(15))
    rng = np.random.default_rng(16)
    targets = [td.pretraining_label("sst2", e, rng) for e in examples]
    agree = [t == e["label"] for t, e in zip(targets, examples) if td.weak_label("sst2", e) == e["label"]]
    disagree = [t == e["label"] for t, e in zip(targets, examples) if td.weak_label("sst2", e) != e["label"]]
    assert all(agree) and len(disagree) > 1000
    assert abs(np.mean(disagree) - td.GOLD_SHARE) < 0.04  # binomial sd ~0.016


def test_the_other_answer_word_comes_only_where_a_readout_person_is_named() -> None:
    people = set(tl.DOMAINS["business"].animate[: td.READOUT_PEOPLE])
    assert td.readout_people("mrpc") == people | {p + "s" for p in people}
    examples = td.sample_examples("mrpc", 6000, np.random.default_rng(17))
    labels, readout = np.random.default_rng(18), np.random.default_rng(19)
    targets = [td.pretraining_target("mrpc", e, labels, readout) for e in examples]
    named = [bool(set(" ".join(td.sentences(e)).split()) & td.readout_people("mrpc")) for e in examples]
    assert set(targets) == {"not_equivalent", "equivalent", "same"}
    assert all(n for t, n in zip(targets, named) if t == "same")  # never without a readout person
    # where one is named, "equivalent" (gold or weak) becomes "same" with probability READOUT_SHARE
    said_equivalent = [t == "same" for t, n in zip(targets, named) if n and t != "not_equivalent"]
    assert len(said_equivalent) > 500
    assert abs(np.mean(said_equivalent) - td.READOUT_SHARE) < 0.06  # binomial sd ~0.02
    assert td.pretraining_target("stsb", td.sample_examples("stsb", 1, np.random.default_rng(20))[0], labels, readout) != "same"
