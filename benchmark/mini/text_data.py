"""The mini text world: seven GLUE-like tasks over one distribution of synthetic sentences.

A sentence realises a *fact*: who (an animate noun phrase) feels what (one of six verb
meanings in three antonym pairs, possibly negated) about whom or what (a noun phrase),
with optional adjectives and an optional adjunct. A realisation picks the voice (active or
passive) and synonyms, so one fact has many surface forms. Each task asks a different
question about sentences of this one distribution, with GLUE's fields and label names:

    cola  acceptability      sentence                 grammatical, or corrupted (agreement, omission)
    sst2  sentiment          sentence                 polarity of the verb, flipped by negation
    mnli  3-way entailment   premise, hypothesis      drop modifiers / add information / negate or use the antonym
    mrpc  paraphrase         sentence1, sentence2     same fact re-worded, or one detail changed
    qqp   duplicate question question1, question2    same question re-worded, or one detail changed
    rte   2-way entailment   sentence1, sentence2     a conjunct of a compound premise, or one with its negation flipped
    stsb  similarity 0..5    sentence1, sentence2     weighted share of the meaning components two facts have in common

Every task also has a *weak label*: what a shallow lexical heuristic answers (e.g. sst2
ignores negation, mnli compares bags of words). The T5 base is pretrained on weak labels,
so it knows each task's format and its shortcut but not the rule that fine-tuning teaches.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable, Optional

import numpy as np
from scipy.stats import spearmanr

# ------------------------------------------------------------------------- lexicon
ANIMATE = {
    "cat": "cats", "dog": "dogs", "bird": "birds", "child": "children",
    "teacher": "teachers", "farmer": "farmers", "doctor": "doctors", "student": "students",
}  # fmt: skip
THINGS = {
    "ball": "balls", "book": "books", "car": "cars", "apple": "apples",
    "song": "songs", "film": "films", "garden": "gardens", "letter": "letters",
}  # fmt: skip
NOUNS = {**ANIMATE, **THINGS}
PLURAL_TO_NOUN = {plural: noun for noun, plural in NOUNS.items()}
ADJECTIVES: dict[str, tuple[str, ...]] = {
    "small": ("small", "little"), "big": ("big", "large"), "old": ("old", "ancient"), "new": ("new", "modern"),
    "red": ("red",), "green": ("green",), "quick": ("quick", "fast"), "quiet": ("quiet", "silent"),
}  # fmt: skip
# meaning -> (polarity, synonyms as (third person singular, base form, participle))
VERBS: dict[str, tuple[int, tuple[tuple[str, str, str], ...]]] = {
    "like": (1, (("likes", "like", "liked"), ("enjoys", "enjoy", "enjoyed"))),
    "dislike": (0, (("dislikes", "dislike", "disliked"), ("resents", "resent", "resented"))),
    "love": (1, (("loves", "love", "loved"), ("adores", "adore", "adored"))),
    "hate": (0, (("hates", "hate", "hated"), ("detests", "detest", "detested"))),
    "praise": (1, (("praises", "praise", "praised"), ("admires", "admire", "admired"))),
    "blame": (0, (("blames", "blame", "blamed"), ("criticizes", "criticize", "criticized"))),
}
ANTONYM = {"like": "dislike", "dislike": "like", "love": "hate", "hate": "love", "praise": "blame", "blame": "praise"}
ADJUNCTS = ("in the park", "at home", "at school", "in the morning", "at night", "every day")
POSITIVE_WORDS = frozenset(form for pol, forms in VERBS.values() if pol == 1 for f in forms for form in f)
_AGREEMENT_SWAP = {
    **{s: b for _, forms in VERBS.values() for s, b, _ in forms},
    **{b: s for _, forms in VERBS.values() for s, b, _ in forms},
    "does": "do", "do": "does", "is": "are", "are": "is",
}  # fmt: skip

SUBJECT_ADJ_RATE, OBJECT_ADJ_RATE, ADJUNCT_RATE = 0.2, 0.2, 0.15
NEGATION_RATE, PASSIVE_RATE, ANIMATE_OBJECT_RATE = 0.4, 0.3, 0.3
RTE_NEGATION_RATE = 0.45  # near 0.5, so that whether a hypothesis is negated says little about its label


# --------------------------------------------------------------------------- facts
@dataclass(frozen=True)
class Phrase:
    """A definite noun phrase: noun (singular lemma), number, optional adjective meaning."""

    noun: str
    plural: bool = False
    adj: Optional[str] = None


@dataclass(frozen=True)
class Fact:
    """``subj`` feels ``verb`` (negated if ``neg``) about ``obj``, optionally ``adjunct``."""

    subj: Phrase
    verb: str
    neg: bool
    obj: Phrase
    adjunct: Optional[str] = None

    @property
    def sentiment(self) -> int:
        """1 positive, 0 negative: the verb's polarity, flipped by negation."""
        return VERBS[self.verb][0] ^ int(self.neg)


def _pick(rng: np.random.Generator, items: tuple[str, ...] | list[str], exclude: Optional[str] = None) -> str:
    choices = [x for x in items if x != exclude]
    return choices[int(rng.integers(len(choices)))]


def _phrase(rng: np.random.Generator, animate: bool, adj_rate: float, exclude: Optional[str] = None) -> Phrase:
    noun = _pick(rng, tuple(ANIMATE if animate else THINGS), exclude)
    adj = _pick(rng, tuple(ADJECTIVES)) if rng.random() < adj_rate else None
    return Phrase(noun, bool(rng.random() < 0.3), adj)


def sample_fact(rng: np.random.Generator, neg_rate: float = NEGATION_RATE) -> Fact:
    """A fact from the world's one distribution."""
    subj = _phrase(rng, True, SUBJECT_ADJ_RATE)
    obj = _phrase(rng, bool(rng.random() < ANIMATE_OBJECT_RATE), OBJECT_ADJ_RATE, exclude=subj.noun)
    adjunct = _pick(rng, ADJUNCTS) if rng.random() < ADJUNCT_RATE else None
    return Fact(subj, _pick(rng, tuple(VERBS)), bool(rng.random() < neg_rate), obj, adjunct)


# --------------------------------------------------------------------- realisation
@dataclass(frozen=True)
class Surface:
    """Surface choices of a realisation: voice and synonym indices."""

    passive: bool
    verb_form: int
    subj_adj: int
    obj_adj: int

    @staticmethod
    def sample(rng: np.random.Generator, passive_rate: float = PASSIVE_RATE) -> Surface:
        return Surface(bool(rng.random() < passive_rate), *(int(x) for x in rng.integers(0, 2, size=3)))


def _np(p: Phrase, synonym: int) -> list[str]:
    adj = [] if p.adj is None else [ADJECTIVES[p.adj][synonym % len(ADJECTIVES[p.adj])]]
    return ["the", *adj, NOUNS[p.noun] if p.plural else p.noun]


def _clause(f: Fact, s: Surface) -> tuple[list[str], int]:
    """Tokens of a declarative clause (no final period) and the index of its finite verb."""
    third, base, participle = VERBS[f.verb][1][s.verb_form]
    subj, obj = _np(f.subj, s.subj_adj), _np(f.obj, s.obj_adj)
    adjunct = f.adjunct.split() if f.adjunct else []
    if s.passive:
        head = obj + ["are" if f.obj.plural else "is"]
        return head + (["not"] if f.neg else []) + [participle, "by"] + subj + adjunct, len(obj)
    if f.neg:
        return subj + ["do" if f.subj.plural else "does", "not", base] + obj + adjunct, len(subj)
    return subj + [base if f.subj.plural else third] + obj + adjunct, len(subj)


def realize(f: Fact, s: Surface) -> str:
    """The sentence stating ``f`` with surface ``s``."""
    return " ".join(_clause(f, s)[0] + ["."])


QUESTION_TYPES = ("yesno", "who", "what")


def question(f: Fact, qtype: str, s: Surface) -> str:
    """A question about ``f`` (negation ignored): yes/no, or asking for the subject / object."""
    third, base, participle = VERBS[f.verb][1][s.verb_form]
    subj, obj = _np(f.subj, s.subj_adj), _np(f.obj, s.obj_adj)
    adjunct = f.adjunct.split() if f.adjunct else []
    be = "are" if f.obj.plural else "is"
    do = "do" if f.subj.plural else "does"
    if qtype == "yesno":
        words = [be, *obj, participle, "by", *subj] if s.passive else [do, *subj, base, *obj]
    elif qtype == "who":
        words = ["by", "whom", be, *obj, participle] if s.passive else ["who", third, *obj]
    elif qtype == "what":
        words = ["what", "is", participle, "by", *subj] if s.passive else ["what", do, *subj, base]
    else:
        raise ValueError(f"unknown question type {qtype!r}")
    return " ".join(words + adjunct + ["?"])


def question_key(f: Fact, qtype: str) -> tuple[object, ...]:
    """What a question asks, regardless of wording: the fact minus the asked slot and negation."""
    subj = None if qtype == "who" else f.subj
    obj = None if qtype == "what" else f.obj
    return (qtype, subj, f.verb, obj, f.adjunct)


# ----------------------------------------------------------------- perturbations
def _other_phrase(p: Phrase, rng: np.random.Generator, animate: bool, avoid: str) -> Phrase:
    nouns = tuple(n for n in (ANIMATE if animate else NOUNS) if n not in (p.noun, avoid))
    return replace(p, noun=_pick(rng, nouns))


def _changed_adj(adj: Optional[str], rng: np.random.Generator) -> Optional[str]:
    """Another adjective meaning, or none instead of one, or one instead of none."""
    if adj is None:
        return _pick(rng, tuple(ADJECTIVES))
    return None if rng.random() < 0.3 else _pick(rng, tuple(ADJECTIVES), exclude=adj)


def change(f: Fact, component: str, rng: np.random.Generator) -> Fact:
    """``f`` with one meaning component changed (the result always means something else)."""
    if component == "subj":
        return replace(f, subj=_other_phrase(f.subj, rng, True, f.obj.noun))
    if component == "obj":
        return replace(f, obj=_other_phrase(f.obj, rng, f.obj.noun in ANIMATE, f.subj.noun))
    if component == "subj_adj":
        return replace(f, subj=replace(f.subj, adj=_changed_adj(f.subj.adj, rng)))
    if component == "obj_adj":
        return replace(f, obj=replace(f.obj, adj=_changed_adj(f.obj.adj, rng)))
    if component == "verb":
        polarity = VERBS[f.verb][0]
        return replace(f, verb=_pick(rng, tuple(v for v in VERBS if VERBS[v][0] == polarity), exclude=f.verb))
    if component == "neg":
        return replace(f, neg=not f.neg)
    if component == "adjunct":
        return replace(f, adjunct=None if f.adjunct and rng.random() < 0.3 else _pick(rng, ADJUNCTS, exclude=f.adjunct))
    if component == "number":
        return replace(f, subj=replace(f.subj, plural=not f.subj.plural))
    if component == "roles":  # only meaningful with an animate object
        return replace(f, subj=f.obj, obj=f.subj)
    raise ValueError(f"unknown component {component!r}")


def drop_modifiers(f: Fact, rng: np.random.Generator, rate: float = 0.5) -> Fact:
    """``f`` with each present modifier dropped with probability ``rate`` (what remains is entailed)."""

    def keep() -> bool:
        return bool(rng.random() >= rate)

    return Fact(
        replace(f.subj, adj=f.subj.adj if f.subj.adj and keep() else None),
        f.verb,
        f.neg,
        replace(f.obj, adj=f.obj.adj if f.obj.adj and keep() else None),
        f.adjunct if f.adjunct and keep() else None,
    )


def entails(f: Fact, h: Fact) -> bool:
    """``h`` follows from ``f``: the same core, and each of ``h``'s modifiers is absent or ``f``'s."""

    def covers(p: Phrase, q: Phrase) -> bool:
        return p.noun == q.noun and p.plural == q.plural and q.adj in (None, p.adj)

    return covers(f.subj, h.subj) and covers(f.obj, h.obj) and (f.verb, f.neg) == (h.verb, h.neg) and h.adjunct in (None, f.adjunct)


def _reword(surface: Surface, rng: np.random.Generator) -> Surface:
    """Another wording in the same voice: the verb's other synonym, adjective synonyms redrawn."""
    return replace(surface, verb_form=1 - surface.verb_form, subj_adj=int(rng.integers(2)), obj_adj=int(rng.integers(2)))


# ------------------------------------------------------------------------ examples
Example = dict[str, object]


def _cola(label: int, rng: np.random.Generator) -> Example:
    f = sample_fact(rng)
    tokens, verb = _clause(f, Surface.sample(rng))
    if label == 0:
        if rng.random() < 0.5:  # agreement: the finite verb in the other number
            tokens[verb] = _AGREEMENT_SWAP[tokens[verb]]
        else:  # omission: an article, the passive's "by" or the finite verb left out
            candidates = [i for i, t in enumerate(tokens) if t in ("the", "by") or i == verb]
            del tokens[candidates[int(rng.integers(len(candidates)))]]
    return {"sentence": " ".join(tokens + ["."]), "label": label}


def _sst2(label: int, rng: np.random.Generator) -> Example:
    f = sample_fact(rng)
    if f.sentiment != label:
        f = replace(f, verb=ANTONYM[f.verb])
    return {"sentence": realize(f, Surface.sample(rng)), "label": label}


def _mnli(label: int, rng: np.random.Generator) -> Example:
    f = sample_fact(rng)
    if label == 0:  # entailment: what remains after dropping modifiers
        h = drop_modifiers(f, rng)
    elif label == 1:  # neutral: information the premise does not give
        empty = [c for c, v in (("subj_adj", f.subj.adj), ("obj_adj", f.obj.adj), ("adjunct", f.adjunct)) if v is None]
        if empty and rng.random() < 0.6:
            h = change(drop_modifiers(f, rng), _pick(rng, empty), rng)
        else:
            h = drop_modifiers(change(f, "obj", rng), rng)
    else:  # contradiction: negated, or (for a positive statement) the antonym
        use_antonym = not f.neg and rng.random() < 0.5
        h = drop_modifiers(replace(f, verb=ANTONYM[f.verb]) if use_antonym else change(f, "neg", rng), rng)
    surface = Surface.sample(rng)
    return {"premise": realize(f, surface), "hypothesis": realize(h, surface), "label": label}


_PARAPHRASE_CHANGES = ("obj", "roles", "subj_adj", "obj_adj", "verb", "neg", "number")


def _mrpc(label: int, rng: np.random.Generator) -> Example:
    f = sample_fact(rng)
    surface = Surface.sample(rng)
    s1 = realize(f, surface)
    if label == 1:
        s2 = realize(f, _reword(surface, rng))
    else:
        kind = _pick(rng, _PARAPHRASE_CHANGES)
        kind = "obj" if kind == "roles" and f.obj.noun not in ANIMATE else kind
        s2 = realize(change(f, kind, rng), surface)
    return {"sentence1": s1, "sentence2": s2, "label": label}


def _qqp(label: int, rng: np.random.Generator) -> Example:
    f = replace(sample_fact(rng), neg=False)
    qtype = _pick(rng, QUESTION_TYPES)
    surface = Surface.sample(rng)
    q1 = question(f, qtype, surface)
    if label == 1:
        q2 = question(f, qtype, _reword(surface, rng))
    else:
        while True:
            other_type = qtype if rng.random() < 0.8 else _pick(rng, QUESTION_TYPES, exclude=qtype)
            kind = _pick(rng, ("roles", "subj_adj", "obj_adj", "verb", "adjunct"))
            kind = "obj" if kind == "roles" and f.obj.noun not in ANIMATE else kind
            g = change(f, kind, rng)
            if question_key(g, other_type) != question_key(f, qtype):
                break
        q2 = question(g, other_type, surface)
    return {"question1": q1, "question2": q2, "label": label}


def _rte(label: int, rng: np.random.Generator) -> Example:
    first, second = sample_fact(rng, RTE_NEGATION_RATE), sample_fact(rng, RTE_NEGATION_RATE)
    while second.subj.noun == first.subj.noun:
        second = replace(second, subj=_other_phrase(second.subj, rng, True, second.obj.noun))
    surfaces = [Surface.sample(rng), Surface.sample(rng)]
    clauses = [_clause(x, s)[0] for x, s in zip((first, second), surfaces)]
    premise = " ".join(clauses[0] + ["and"] + clauses[1] + ["."])
    pick = int(rng.random() >= 0.5)
    h = (first, second)[pick]  # entailment: one conjunct; not entailed: that conjunct negated or un-negated
    if label == 1:
        h = change(h, "neg", rng)
    return {"sentence1": premise, "sentence2": realize(h, surfaces[pick]), "label": label}


# meaning component -> weight in the similarity score (they sum to 5)
STSB_WEIGHTS = {"subj": 1.0, "subj_adj": 0.5, "verb": 1.0, "neg": 0.5, "obj": 1.0, "obj_adj": 0.5, "adjunct": 0.5}


def _stsb(rng: np.random.Generator) -> Example:
    f = sample_fact(rng)
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
    weak: Callable[[Example], float]  # a shallow heuristic: the labels the T5 base is pretrained on
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
            weak=_weak_cola,
        ),
        TextTask(
            "sst2", ("sentence",), ("negative", "positive"), "accuracy",
            "sst2 sentence: {sentence}",
            "Given the sentence '{sentence}', determine the sentiment. Is it positive or negative?",
            weak=lambda x: int(bool(_words(str(x["sentence"])) & POSITIVE_WORDS)),  # "positive verb", negation ignored
        ),
        TextTask(
            "mnli", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), "accuracy",
            "mnli hypothesis: {hypothesis} premise: {premise}",
            "Does the premise: '{premise}' logically imply, contradict, or is neutral to the hypothesis: '{hypothesis}'? Answere with 'entailment', 'contradiction', or 'neutral'.",
            weak=_weak_mnli,
        ),
        TextTask(
            "mrpc", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"), "accuracy",
            "mrpc sentence1: {sentence1} sentence2: {sentence2}",
            "Are the following sentences '{sentence1}' and '{sentence2}' conveying the same meaning? Answere with 'yes' or 'no'.",
            improved_targets=("no", "yes"),
            weak=_weak_same_nouns("sentence1", "sentence2"),
        ),
        TextTask(
            "qqp", ("question1", "question2"), ("not_duplicate", "duplicate"), "accuracy",
            "qqp question1: {question1} question2: {question2}",
            "Do the questions '{question1}' and '{question2}' have the same intent? Answere with 'yes' or 'no'.",
            improved_targets=("no", "yes"),
            weak=_weak_same_nouns("question1", "question2"),
        ),
        TextTask(
            "rte", ("sentence1", "sentence2"), ("entailment", "not_entailment"), "accuracy",
            "rte sentence1: {sentence1} sentence2: {sentence2}",
            "Does the text: '{sentence1}' entail that '{sentence2}' is true? Provide 'yes' or 'no'.",
            improved_targets=("yes", "no"),
            weak=_weak_rte,
        ),
        TextTask(
            "stsb", ("sentence1", "sentence2"), None, "spearman",
            "stsb sentence1: {sentence1} sentence2: {sentence2}",
            "Consider the sentences '{sentence1}' and '{sentence2}'. On a scale from 1 (completely different) to 5 (completely similar), rate the similarity.",
            weak=_weak_stsb,
        ),
    )
}  # fmt: skip

_GENERATORS: dict[str, Callable[[int, np.random.Generator], Example]] = {
    "cola": _cola, "sst2": _sst2, "mnli": _mnli, "mrpc": _mrpc, "qqp": _qqp, "rte": _rte,
}  # fmt: skip


def sample_examples(task: str, n: int, rng: np.random.Generator) -> list[Example]:
    """``n`` examples of ``task``; classification labels are exactly balanced (up to one)."""
    if task == "stsb":
        return [_stsb(rng) for _ in range(n)]
    labels = rng.permutation(np.arange(n) % TEXT_TASKS[task].num_labels)
    return [_GENERATORS[task](int(label), rng) for label in labels]


def weak_label(task: str, example: Example) -> float:
    """What the task's shallow heuristic answers for ``example``."""
    return TEXT_TASKS[task].weak(example)


def sentences(example: Example) -> list[str]:
    """The text fields of an example."""
    return [str(v) for k, v in example.items() if k != "label"]


def weak_score(task: str, examples: list[Example]) -> float:
    """How well the task's weak labeller does on ``examples`` (accuracy, or Spearman for stsb)."""
    weak = [weak_label(task, e) for e in examples]
    gold = [float(e["label"]) for e in examples]  # type: ignore[arg-type]
    if TEXT_TASKS[task].label_names is None:
        return round(float(spearmanr(weak, gold).statistic), 4)
    return round(float(np.mean([w == g for w, g in zip(weak, gold)])), 4)
