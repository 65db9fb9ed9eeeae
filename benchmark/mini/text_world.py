"""The mini text world's data and base: the seven tasks' splits, the base's pretraining
mixture, and the tiny T5 trained on it (research/mini_t5, format 9: design t47).

The base learns from two sources, drawn per example: T5 span corruption on the sentences of
the world (``DENOISING_SHARE``) and task prompts in the paper templates whose target is the
gold label half of the time and the weak labeller's otherwise, so it knows every task's
format and its errors are near-ties that fine-tuning tips; where a prompt names one of a
few people, one label is often answered with another word (``text_data.pretraining_target``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from transformers import T5ForConditionalGeneration, T5Tokenizer

from fusionbench.mini import bases, text_data
from fusionbench.mini.build_steps import stream_rng, torch_seed
from fusionbench.mini.tokenization import train_t5_tokenizer

DENOISING_SHARE = 0.25  # share of the pretraining examples that are span corruption
PRETRAIN_LR = 2e-3


@dataclass(frozen=True)
class TextCorpus:
    """Everything a text world is made of before its base: task splits, pretraining prompts and sentences."""

    splits: dict[str, dict[str, list[text_data.Example]]]  # task -> split -> examples
    prompts: dict[str, list[tuple[str, str]]]  # task -> (input, target) pretraining prompts
    sentences: list[str]  # every sentence of the prompts' examples, for span corruption


def generate_corpus(split_sizes: dict[str, int], prompts_per_task: int, seed: int, advance: Callable[[int], None]) -> TextCorpus:
    """The seven tasks' splits and the base's pretraining prompts, each from its own random stream of ``seed``."""
    splits: dict[str, dict[str, list[text_data.Example]]] = {}
    prompts: dict[str, list[tuple[str, str]]] = {}
    sentences: list[str] = []
    for name, task in text_data.TEXT_TASKS.items():
        splits[name] = {}
        for split, n in split_sizes.items():
            splits[name][split] = text_data.sample_examples(name, n, stream_rng(seed, "text", name, split))
            advance(1)
        examples = text_data.sample_examples(name, prompts_per_task, stream_rng(seed, "text", name, "pretrain"))
        labels, readout = stream_rng(seed, "text", name, "pretrain-labels"), stream_rng(seed, "text", name, "pretrain-readout")
        prompts[name] = [(task.input_text(e), text_data.pretraining_target(name, e, labels, readout)) for e in examples]
        sentences += [s for e in examples for s in text_data.sentences(e)]
        advance(1)
    return TextCorpus(splits, prompts, sentences)


def tokenizer_corpus(corpus: TextCorpus) -> list[str]:
    """The texts the tokenizer is trained on: training inputs and targets in both template forms, prompts' targets, sentences."""
    texts = [
        text
        for name, task in text_data.TEXT_TASKS.items()
        for e in corpus.splits[name]["train"]
        for form in ("paper", "improved")
        for text in (task.input_text(e, form), task.target(float(e["label"]), form))  # type: ignore[arg-type]
    ]
    return texts + [target for pairs in corpus.prompts.values() for _, target in pairs] + corpus.sentences


def train_base(
    corpus: TextCorpus, steps: int, batch_size: int, seed: int, advance: Callable[[int], None]
) -> tuple[T5ForConditionalGeneration, T5Tokenizer, list[float]]:
    """Train the world's tokenizer, then pretrain a tiny T5 on the mixture of span corruption and task prompts."""
    tokenizer = train_t5_tokenizer(tokenizer_corpus(corpus))
    model = bases.new_t5(tokenizer, torch_seed(seed, "t5", "init"))
    names = list(corpus.prompts)

    def sample(n: int, rng: np.random.Generator) -> list[tuple[str, str]]:
        out = []
        for _ in range(n):
            if rng.random() < DENOISING_SHARE:
                out.append(bases.span_corruption(corpus.sentences[int(rng.integers(len(corpus.sentences)))].split(), rng))
            else:
                pairs = corpus.prompts[names[int(rng.integers(len(names)))]]
                out.append(pairs[int(rng.integers(len(pairs)))])
        return out

    schedule = bases.TrainSchedule(steps, batch_size, lr=PRETRAIN_LR)
    losses = bases.pretrain_t5(model, tokenizer, sample, schedule, torch_seed(seed, "t5", "train"), advance)
    return model, tokenizer, losses
