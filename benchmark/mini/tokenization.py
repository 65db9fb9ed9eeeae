"""Tokenizers for the mini bases, trained locally with the `tokenizers` library.

* CLIP: byte-level BPE (merges learned here) with CLIP's normaliser, pre-tokeniser and ``</w>`` word suffix,
  wrapped in transformers' ``CLIPTokenizer`` (``<|startoftext|>`` = 0, ``<|endoftext|>`` = 1,
  which is also the padding token, as in OpenAI's CLIP).
* T5: a SentencePiece-style Unigram model whose pieces are the corpus's words, wrapped in
  ``T5Tokenizer`` (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, sentinels ``<extra_id_i>`` at
  the end of the vocabulary, ``</s>`` appended).

Both save with ``save_pretrained`` and are deterministic functions of their corpus.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Iterable

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
from transformers import CLIPTokenizer, T5Tokenizer

CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
T5_SPECIALS = ("<pad>", "</s>", "<unk>")
T5_EXTRA_IDS = 16


def train_clip_tokenizer(corpus: Iterable[str], vocab_size: int = 1024, model_max_length: int = 32) -> CLIPTokenizer:
    """A CLIP tokenizer whose BPE merges are learned from ``corpus``, deterministically.

    Words are split as transformers' ``CLIPTokenizer`` splits them (same normaliser and
    pre-tokeniser), so the merges learned here are the merges it applies. The vocabulary is
    the two special tokens, every byte symbol with and without the ``</w>`` word suffix
    (nothing is ever unknown) and one token per merge.
    """
    splitter = Tokenizer(models.BPE())
    splitter.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    splitter.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    words: Counter[tuple[str, ...]] = Counter()
    for text in corpus:
        for piece, _ in splitter.pre_tokenizer.pre_tokenize_str(splitter.normalizer.normalize_str(text)):
            words[(*piece[:-1], piece[-1] + "</w>")] += 1
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    symbols = [CLIP_BOS, CLIP_EOS, *alphabet, *(a + "</w>" for a in alphabet)]
    merges = learn_bpe_merges(words, vocab_size - len(symbols))
    vocab = {token: i for i, token in enumerate(symbols + ["".join(pair) for pair in merges])}
    # the BPE model takes (left, right) pairs although CLIPTokenizer's hint says strings
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)  # type: ignore[arg-type]


def learn_bpe_merges(words: Counter[tuple[str, ...]], budget: int) -> list[tuple[str, str]]:
    """Byte-pair encoding (Sennrich et al., 2016) on word counts: repeatedly merge the most
    frequent adjacent pair, ties broken by the smaller pair, so the merges are a function
    of the counts (the ``tokenizers`` trainer breaks ties in hash order)."""
    merges: list[tuple[str, str]] = []
    while len(merges) < budget:
        pairs: Counter[tuple[str, str]] = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = min(pairs, key=lambda pair: (-pairs[pair], pair))
        merges.append(best)
        merged: Counter[tuple[str, ...]] = Counter()
        for word, count in words.items():
            merged[_apply_merge(word, best)] += count
        words = merged
    return merges


def _apply_merge(word: tuple[str, ...], pair: tuple[str, str]) -> tuple[str, ...]:
    out: list[str] = []
    i = 0
    while i < len(word):
        if i + 1 < len(word) and (word[i], word[i + 1]) == pair:
            out.append(word[i] + word[i + 1])
            i += 2
        else:
            out.append(word[i])
            i += 1
    return tuple(out)


def train_t5_tokenizer(corpus: Iterable[str], vocab_size: int = 1024, model_max_length: int = 128) -> T5Tokenizer:
    """A T5 tokenizer whose Unigram pieces are the words of ``corpus`` (``</s>`` appended).

    The pieces are the corpus's most frequent words (each with SentencePiece's ``▁`` word
    prefix) scored by their log frequency, plus every character seen, scored far lower, so
    that a known word is one token and anything else still spells out. On a corpus of a
    few hundred distinct words this is what a Unigram trainer should converge to, without
    its ties and sampling: the result is a deterministic function of the corpus.
    """
    split = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)]
    )
    words: Counter[str] = Counter()
    for text in corpus:
        words.update(piece for piece, _ in split.pre_tokenize_str(text))
    characters = sorted({c for word in words for c in word} | {"▁"})
    room = vocab_size - len(T5_SPECIALS) - T5_EXTRA_IDS - len(characters)
    if room <= 0:
        raise ValueError(f"vocab_size={vocab_size} leaves no room for words after {len(characters)} characters and the special tokens")
    kept = sorted(words.items(), key=lambda item: (-item[1], item[0]))[:room]
    total = sum(count for _, count in kept)
    scores = {word: math.log(count / total) for word, count in kept if len(word) > 1}
    floor = min(scores.values(), default=0.0) - 10.0
    pieces = [(piece, 0.0) for piece in T5_SPECIALS] + list(scores.items())
    pieces += [(c, floor) for c in characters]
    sentinels = [(f"<extra_id_{i}>", 0.0) for i in reversed(range(T5_EXTRA_IDS))]
    return T5Tokenizer(vocab=pieces + sentinels, extra_ids=T5_EXTRA_IDS, model_max_length=model_max_length)
