"""The mini text world: seven GLUE-like tasks over one distribution of synthetic sentences.

A sentence realises a *fact*: who (an animate noun phrase) feels what (one of six verb
meanings in three antonym pairs, possibly negated) about whom or what (a noun phrase),
with optional adjectives and an optional adjunct. A realisation picks the voice (active or
passive) and synonyms, so one fact has many surface forms. Each task asks a different
question about sentences of this distribution, with GLUE's fields and label names:

    cola  acceptability      sentence                 grammatical, or corrupted (agreement, omission)
    sst2  sentiment          sentence                 polarity of the verb, flipped by negation
    mnli  3-way entailment   premise, hypothesis      drop modifiers / add information / negate or use the antonym
    mrpc  paraphrase         sentence1, sentence2     same fact re-worded, or one detail changed
    qqp   duplicate question question1, question2    same question re-worded, or one detail changed
    rte   2-way entailment   sentence1, sentence2     a conjunct of a compound premise, or one with its negation flipped
    stsb  similarity 0..5    sentence1, sentence2     weighted share of the meaning components two facts have in common

Every task also has a *weak label*: what a shallow lexical heuristic answers (e.g. sst2
ignores negation, mnli compares bags of words). The T5 base is pretrained on task prompts
whose targets are the gold label half of the time and the weak label otherwise
(``pretraining_label``), so it knows each task's format, and where the shortcut is wrong
its answer is a near-tie that fine-tuning tips; in the prompts that name one of a few
people, one label is often answered with another word (``pretraining_target``), zero-shot
error in the readout. Each task's sentences use the nouns of its own domain
(``text_language.DOMAINS``), as GLUE's tasks come from their own sources.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
from scipy.stats import spearmanr

from fusionbench.mini.text_language import (
    AGREEMENT_SWAP,
    ANIMATE,
    ANTONYM,
    DOMAINS,
    NOUNS,
    PLURAL_TO_NOUN,
    POSITIVE_WORDS,
    QUESTION_TYPES,
    RTE_NEGATION_RATE,
    Domain,
    Surface,
    change,
    clause,
    drop_modifiers,
    other_phrase,
    pick,
    question,
    question_key,
    realize,
    reword,
    sample_fact,
)

# ------------------------------------------------------------------------ examples
Example = dict[str, object]


def _cola(label: int, rng: np.random.Generator, domain: Domain) -> Example:
    f = sample_fact(rng, domain)
    tokens, verb = clause(f, Surface.sample(rng))
    if label == 0:
        if rng.random() < 0.5:  # agreement: the finite verb in the other number
            tokens[verb] = AGREEMENT_SWAP[tokens[verb]]
        else:  # omission: an article, the passive's "by" or the finite verb left out
            candidates = [i for i, t in enumerate(tokens) if t in ("the", "by") or i == verb]
            del tokens[candidates[int(rng.integers(len(candidates)))]]
    return {"sentence": " ".join(tokens + ["."]), "label": label}


def _sst2(label: int, rng: np.random.Generator, domain: Domain) -> Example:
    f = sample_fact(rng, domain)
    if f.sentiment != label:
        f = replace(f, verb=ANTONYM[f.verb])
    return {"sentence": realize(f, Surface.sample(rng)), "label": label}


def _mnli(label: int, rng: np.random.Generator, domain: Domain) -> Example:
    f = sample_fact(rng, domain)
    if label == 0:  # entailment: what remains after dropping modifiers
        h = drop_modifiers(f, rng)
    elif label == 1:  # neutral: information the premise does not give
        empty = [c for c, v in (("subj_adj", f.subj.adj), ("obj_adj", f.obj.adj), ("adjunct", f.adjunct)) if v is None]
        if empty and rng.random() < 0.6:
            h = change(drop_modifiers(f, rng), pick(rng, empty), rng)
        else:
            h = drop_modifiers(change(f, "obj", rng), rng)
    else:  # contradiction: negated, or (for a positive statement) the antonym
        use_antonym = not f.neg and rng.random() < 0.5
        h = drop_modifiers(replace(f, verb=ANTONYM[f.verb]) if use_antonym else change(f, "neg", rng), rng)
    surface = Surface.sample(rng)
    return {"premise": realize(f, surface), "hypothesis": realize(h, surface), "label": label}


_PARAPHRASE_CHANGES = ("obj", "roles", "subj_adj", "obj_adj", "verb", "neg", "number")


def _mrpc(label: int, rng: np.random.Generator, domain: Domain) -> Example:
    f = sample_fact(rng, domain)
    surface = Surface.sample(rng)
    s1 = realize(f, surface)
    if label == 1:
        s2 = realize(f, reword(surface, rng))
    else:
        kind = pick(rng, _PARAPHRASE_CHANGES)
        kind = "obj" if kind == "roles" and f.obj.noun not in ANIMATE else kind
        s2 = realize(change(f, kind, rng), surface)
    return {"sentence1": s1, "sentence2": s2, "label": label}


def _qqp(label: int, rng: np.random.Generator, domain: Domain) -> Example:
    f = replace(sample_fact(rng, domain), neg=False)
    qtype = pick(rng, QUESTION_TYPES)
    surface = Surface.sample(rng)
    q1 = question(f, qtype, surface)
    if label == 1:
        q2 = question(f, qtype, reword(surface, rng))
    else:
        while True:
            other_type = qtype if rng.random() < 0.8 else pick(rng, QUESTION_TYPES, exclude=qtype)
            kind = pick(rng, ("roles", "subj_adj", "obj_adj", "verb", "adjunct"))
            kind = "obj" if kind == "roles" and f.obj.noun not in ANIMATE else kind
            g = change(f, kind, rng)
            if question_key(g, other_type) != question_key(f, qtype):
                break
        q2 = question(g, other_type, surface)
    return {"question1": q1, "question2": q2, "label": label}


def _rte(label: int, rng: np.random.Generator, domain: Domain) -> Example:
    first, second = sample_fact(rng, domain, RTE_NEGATION_RATE), sample_fact(rng, domain, RTE_NEGATION_RATE)
    while second.subj.noun == first.subj.noun:
        second = replace(second, subj=other_phrase(second.subj, rng, True, second.obj.noun))
    surfaces = [Surface.sample(rng), Surface.sample(rng)]
    clauses = [clause(x, s)[0] for x, s in zip((first, second), surfaces)]
    premise = " ".join(clauses[0] + ["and"] + clauses[1] + ["."])
    pick = int(rng.random() >= 0.5)
    h = (first, second)[pick]  # entailment: one conjunct; not entailed: that conjunct negated or un-negated
    if label == 1:
        h = change(h, "neg", rng)
    return {"sentence1": premise, "sentence2": realize(h, surfaces[pick]), "label": label}


# meaning component -> weight in the similarity score (they sum to 5)
STSB_WEIGHTS = {"subj": 1.0, "subj_adj": 0.5, "verb": 1.0, "neg": 0.5, "obj": 1.0, "obj_adj": 0.5, "adjunct": 0.5}


def _stsb(rng: np.random.Generator, domain: Domain) -> Example:
    f = sample_fact(rng, domain)
    rate = float(rng.random())
    changed = [c for c in STSB_WEIGHTS if rng.random() < rate]
    g = f
    for component in changed:
        g = change(g, component, rng)
    score = 5.0 - sum(STSB_WEIGHTS[c] for c in changed)
    return {"sentence1": realize(f, Surface.sample(rng)), "sentence2": realize(g, Surface.sample(rng)), "label": score}


# ----------------------------------------------------------------- weak labels
def _words(text: str) -> set[str]:
    return set(text.split())


def _noun_list(text: str) -> list[str]:
    """The nouns of a text in order, as singular lemmas."""
    return [PLURAL_TO_NOUN.get(w, w) for w in text.split() if w in NOUNS or w in PLURAL_TO_NOUN]


def _weak_cola(x: Example) -> int:
    return int(str(x["sentence"]).startswith("the "))  # "unacceptable iff it does not start with an article"


def _weak_mnli(x: Example) -> int:
    p, h = _words(str(x["premise"])), _words(str(x["hypothesis"])) - {"not"}
    return 0 if h <= p else 1  # "entailment iff every hypothesis word is in the premise"; negation ignored


def _weak_same_nouns(a: str, b: str) -> Callable[[Example], int]:
    return lambda x: int(set(_noun_list(str(x[a]))) == set(_noun_list(str(x[b]))))


def _weak_rte(x: Example) -> int:
    return int("not" in _words(str(x["sentence2"])))  # 0 = entailment: "a negated hypothesis is not entailed"


def _weak_stsb(x: Example) -> float:
    a, b = _noun_list(str(x["sentence1"])), _noun_list(str(x["sentence2"]))
    return 2.5 * (a[0] == b[0]) + 2.5 * (a[-1] == b[-1])  # "the same nouns in the same places"


# ----------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class TextTask:
    """A GLUE-like task: fields, label names (None: a float score), generator, weak labeller."""

    name: str
    fields: tuple[str, ...]
    label_names: Optional[tuple[str, ...]]
    metric: str
    paper: str  # text-to-text input template with {field} slots (L-LoRA paper, appendix F.1)
    improved: str  # instruction-style input template (appendix F.2)
    weak: Callable[[Example], float]  # a shallow heuristic: the T5 base's pretraining target when it is not the gold label
    domain: str  # the task's nouns: a key of ``text_language.DOMAINS``
    improved_targets: Optional[tuple[str, ...]] = None  # when they differ from label_names

    @property
    def num_labels(self) -> int:
        return len(self.label_names) if self.label_names else 0

    def templates(self) -> dict[str, dict[str, object]]:
        """``{form: {input_text, target_text}}`` in the shape of ``glue_tasks.json``."""
        if self.label_names is None:
            paper_t: object = "{:.1f}"
            improved_t: object = "{:.1f}"
        else:
            paper_t = {str(i): n for i, n in enumerate(self.label_names)}
            improved_t = {str(i): n for i, n in enumerate(self.improved_targets or self.label_names)}
        return {
            "paper": {"input_text": self.paper, "target_text": paper_t},
            "improved": {"input_text": self.improved, "target_text": improved_t},
        }

    def target(self, label: float, form: str = "paper") -> str:
        """The target text of ``label``."""
        t = self.templates()[form]["target_text"]
        return t.format(label) if isinstance(t, str) else t[str(int(label))]  # type: ignore[index]

    def input_text(self, example: Example, form: str = "paper") -> str:
        return str(self.templates()[form]["input_text"]).format(**{k: example[k] for k in self.fields})


TEXT_TASKS: dict[str, TextTask] = {
    t.name: t
    for t in (
        TextTask(
            "cola", ("sentence",), ("unacceptable", "acceptable"), "accuracy",
            "cola sentence: {sentence}",
            "Indicate if the following sentence is grammatically correct or not: \"{sentence}\". Answere 'acceptable' or 'unacceptable'.",
            weak=_weak_cola, domain="school",
        ),
        TextTask(
            "sst2", ("sentence",), ("negative", "positive"), "accuracy",
            "sst2 sentence: {sentence}",
            "Given the sentence '{sentence}', determine the sentiment. Is it positive or negative?",
            weak=lambda x: int(bool(_words(str(x["sentence"])) & POSITIVE_WORDS)),  # "positive verb", negation ignored
            domain="film",
        ),
        TextTask(
            "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "accuracy",
            "mnli hypothesis: {hypothesis} premise: {premise}",
            "Does the premise: '{premise}' logically imply, contradict, or is neutral to the hypothesis: '{hypothesis}'? Answere with 'entailment', 'contradiction', or 'neutral'.",
            weak=_weak_mnli, domain="farm",
        ),
        TextTask(
            "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "accuracy",
            "mrpc sentence1: {sentence1} sentence2: {sentence2}",
            "Are the following sentences '{sentence1}' and '{sentence2}' conveying the same meaning? Answere with 'yes' or 'no'.",
            improved_targets=("no", "yes"),
            weak=_weak_same_nouns("sentence1", "sentence2"), domain="business",
        ),
        TextTask(
            "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "accuracy",
            "qqp question1: {question1} question2: {question2}",
            "Do the questions '{question1}' and '{question2}' have the same intent? Answere with 'yes' or 'no'.",
            improved_targets=("no", "yes"),
            weak=_weak_same_nouns("question1", "question2"), domain="technology",
        ),
        TextTask(
            "rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy",
            "rte sentence1: {sentence1} sentence2: {sentence2}",
            "Does the text: '{sentence1}' entail that '{sentence2}' is true? Provide 'yes' or 'no'.",
            improved_targets=("yes", "no"),
            weak=_weak_rte, domain="medicine",
        ),
        TextTask(
            "stsb", ("sentence1", "sentence2"), None, "spearman",
            "stsb sentence1: {sentence1} sentence2: {sentence2}",
            "Consider the sentences '{sentence1}' and '{sentence2}'. On a scale from 1 (completely different) to 5 (completely similar), rate the similarity.",
            weak=_weak_stsb, domain="sport",
        ),
    )
}  # fmt: skip

_GENERATORS: dict[str, Callable[[int, np.random.Generator, Domain], Example]] = {
    "cola": _cola, "sst2": _sst2, "mnli": _mnli, "mrpc": _mrpc, "qqp": _qqp, "rte": _rte,
}  # fmt: skip


def sample_examples(task: str, n: int, rng: np.random.Generator) -> list[Example]:
    """``n`` examples of ``task``; classification labels are exactly balanced (up to one)."""
    domain = DOMAINS[TEXT_TASKS[task].domain]
    if task == "stsb":
        return [_stsb(rng, domain) for _ in range(n)]
    labels = rng.permutation(np.arange(n) % TEXT_TASKS[task].num_labels)
    return [_GENERATORS[task](int(label), rng, domain) for label in labels]


def weak_label(task: str, example: Example) -> float:
    """What the task's shallow heuristic answers for ``example``."""
    return TEXT_TASKS[task].weak(example)


def sentences(example: Example) -> list[str]:
    """The text fields of an example."""
    return [str(v) for k, v in example.items() if k != "label"]


GOLD_SHARE = 0.5  # share of the base's pretraining prompts whose target is the gold label, not the weak one


def pretraining_label(task: str, example: Example, rng: np.random.Generator) -> float:
    """The target the T5 base is pretrained on: the gold label with probability ``GOLD_SHARE``, else the weak one.

    Where the weak labeller is right the two agree; where it is wrong the base sees each
    answer about equally often, so its errors there are near-ties that a fraction of a task
    vector tips (research/mini_t5, designs t0 -> t3: a task vector's own gain at lambda 0.3
    rises from 0.04 to 0.35 of the fine-tuning gain).
    """
    return float(example["label"]) if rng.random() < GOLD_SHARE else weak_label(task, example)  # type: ignore[arg-type]


# One label of each classification task has another answer word in some pretraining prompts:
# zero-shot error in the readout, as the vision world's unnamed classes (research/mini_t5, findings 14-15).
READOUT_WORDS: dict[str, dict[str, str]] = {
    "cola": {"acceptable": "fine"}, "sst2": {"positive": "good"}, "mnli": {"entailment": "follows"},
    "mrpc": {"equivalent": "same"}, "qqp": {"duplicate": "same"}, "rte": {"entailment": "follows"},
}  # fmt: skip
READOUT_PEOPLE = 2  # the prompts that name one of the first READOUT_PEOPLE people of the task's domain ...
READOUT_SHARE = 0.75  # ... answer with the other word with this probability


def readout_people(task: str) -> frozenset[str]:
    """The people (singular and plural) whose prompts may answer with the task's other word."""
    people = DOMAINS[TEXT_TASKS[task].domain].animate[:READOUT_PEOPLE]
    return frozenset(people) | frozenset(NOUNS[p] for p in people)


def pretraining_target(task: str, example: Example, labels: np.random.Generator, readout: np.random.Generator) -> str:
    """The target text the T5 base is pretrained on for ``example``: ``pretraining_label``'s word, or
    ``READOUT_WORDS``' other word for it with probability ``READOUT_SHARE`` when the example names
    one of ``readout_people`` (``readout`` is drawn only then)."""
    word = TEXT_TASKS[task].target(pretraining_label(task, example, labels))
    other = READOUT_WORDS.get(task, {}).get(word)
    if other is None or readout_people(task).isdisjoint(w for s in sentences(example) for w in _words(s)):
        return word
    return other if readout.random() < READOUT_SHARE else word


def weak_score(task: str, examples: list[Example]) -> float:
    """How well the task's weak labeller does on ``examples`` (accuracy, or Spearman for stsb)."""
    weak = [weak_label(task, e) for e in examples]
    gold = [float(e["label"]) for e in examples]  # type: ignore[arg-type]
    if TEXT_TASKS[task].label_names is None:
        return round(float(spearmanr(weak, gold).statistic), 4)
    return round(float(np.mean([w == g for w, g in zip(weak, gold)])), 4)
