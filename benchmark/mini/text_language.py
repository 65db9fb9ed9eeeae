"""The mini text world's synthetic language: its lexicon, facts (who does what to whom), their realisation as sentences and questions, and the perturbations the tasks are built from."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import numpy as np

# ------------------------------------------------------------------------- lexicon
@dataclass(frozen=True)
class Domain:
    """What one task's sentences are about: its animate nouns and its things (regular plurals in -s).

    Each task draws its nouns from its own domain, as GLUE's tasks come from their own sources
    (reviews, news, questions, ...); verbs, adjectives, adjuncts and grammar are shared.
    Measured in research/mini_t5 (designs t3 -> t4): one shared lexicon left seven-task task
    arithmetic at 0.16 of the fine-tuning gain, per-task domains 0.26.
    """

    animate: tuple[str, ...]
    things: tuple[str, ...]

    @property
    def nouns(self) -> tuple[str, ...]:
        return self.animate + self.things


DOMAINS: dict[str, Domain] = {
    "school": Domain(("pupil", "tutor", "clerk", "poet", "author", "editor", "reader", "writer"), ("essay", "poem", "novel", "page", "word", "story", "verse", "chapter")),
    "film": Domain(("actor", "director", "critic", "viewer", "singer", "dancer", "fan", "comedian"), ("movie", "show", "scene", "script", "stage", "ticket", "album", "concert")),
    "farm": Domain(("shepherd", "miller", "baker", "butcher", "rancher", "gardener", "hunter", "fisher"), ("barn", "field", "fence", "wagon", "tractor", "pear", "plough", "orchard")),
    "business": Domain(("banker", "trader", "broker", "lawyer", "manager", "partner", "investor", "buyer"), ("contract", "market", "loan", "bond", "report", "deal", "budget", "invoice")),
    "technology": Domain(("coder", "engineer", "user", "admin", "designer", "tester", "player", "gamer"), ("laptop", "phone", "server", "app", "game", "website", "keyboard", "screen")),
    "medicine": Domain(("nurse", "patient", "surgeon", "dentist", "pharmacist", "medic", "therapist", "midwife"), ("pill", "clinic", "bandage", "syringe", "scan", "diet", "vaccine", "ward")),
    "sport": Domain(("runner", "coach", "swimmer", "skier", "sailor", "pilot", "driver", "rider"), ("boat", "bike", "plane", "train", "map", "tent", "helmet", "medal")),
}  # fmt: skip
ANIMATE = frozenset(n for d in DOMAINS.values() for n in d.animate)
NOUNS = {n: n + "s" for d in DOMAINS.values() for n in d.nouns}  # every domain's nouns -> plural
PLURAL_TO_NOUN = {plural: noun for noun, plural in NOUNS.items()}
DOMAIN_OF = {n: d for d in DOMAINS.values() for n in d.nouns}
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
AGREEMENT_SWAP = {
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


def pick(rng: np.random.Generator, items: tuple[str, ...] | list[str], exclude: Optional[str] = None) -> str:
    choices = [x for x in items if x != exclude]
    return choices[int(rng.integers(len(choices)))]


def _phrase(rng: np.random.Generator, domain: Domain, animate: bool, adj_rate: float, exclude: Optional[str] = None) -> Phrase:
    noun = pick(rng, domain.animate if animate else domain.things, exclude)
    adj = pick(rng, tuple(ADJECTIVES)) if rng.random() < adj_rate else None
    return Phrase(noun, bool(rng.random() < 0.3), adj)


def sample_fact(rng: np.random.Generator, domain: Domain, neg_rate: float = NEGATION_RATE) -> Fact:
    """A fact about ``domain``'s nouns, from the world's one distribution of facts."""
    subj = _phrase(rng, domain, True, SUBJECT_ADJ_RATE)
    obj = _phrase(rng, domain, bool(rng.random() < ANIMATE_OBJECT_RATE), OBJECT_ADJ_RATE, exclude=subj.noun)
    adjunct = pick(rng, ADJUNCTS) if rng.random() < ADJUNCT_RATE else None
    return Fact(subj, pick(rng, tuple(VERBS)), bool(rng.random() < neg_rate), obj, adjunct)


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


def clause(f: Fact, s: Surface) -> tuple[list[str], int]:
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
    return " ".join(clause(f, s)[0] + ["."])


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
def other_phrase(p: Phrase, rng: np.random.Generator, animate: bool, avoid: str) -> Phrase:
    """``p`` with another noun of its domain (an animate one if ``animate``), neither its own nor ``avoid``."""
    domain = DOMAIN_OF[p.noun]
    nouns = tuple(n for n in (domain.animate if animate else domain.nouns) if n not in (p.noun, avoid))
    return replace(p, noun=pick(rng, nouns))


def _changed_adj(adj: Optional[str], rng: np.random.Generator) -> Optional[str]:
    """Another adjective meaning, or none instead of one, or one instead of none."""
    if adj is None:
        return pick(rng, tuple(ADJECTIVES))
    return None if rng.random() < 0.3 else pick(rng, tuple(ADJECTIVES), exclude=adj)


def change(f: Fact, component: str, rng: np.random.Generator) -> Fact:
    """``f`` with one meaning component changed (the result always means something else)."""
    if component == "subj":
        return replace(f, subj=other_phrase(f.subj, rng, True, f.obj.noun))
    if component == "obj":
        return replace(f, obj=other_phrase(f.obj, rng, f.obj.noun in ANIMATE, f.subj.noun))
    if component == "subj_adj":
        return replace(f, subj=replace(f.subj, adj=_changed_adj(f.subj.adj, rng)))
    if component == "obj_adj":
        return replace(f, obj=replace(f.obj, adj=_changed_adj(f.obj.adj, rng)))
    if component == "verb":
        polarity = VERBS[f.verb][0]
        return replace(f, verb=pick(rng, tuple(v for v in VERBS if VERBS[v][0] == polarity), exclude=f.verb))
    if component == "neg":
        return replace(f, neg=not f.neg)
    if component == "adjunct":
        return replace(f, adjunct=None if f.adjunct and rng.random() < 0.3 else pick(rng, ADJUNCTS, exclude=f.adjunct))
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


def reword(surface: Surface, rng: np.random.Generator) -> Surface:
    """Another wording in the same voice: the verb's other synonym, adjective synonyms redrawn."""
    return replace(surface, verb_form=1 - surface.verb_form, subj_adj=int(rng.integers(2)), obj_adj=int(rng.integers(2)))
