"""Tokenizers for the mini bases, trained locally with the `tokenizers` library.

* CLIP: byte-level BPE with CLIP's normaliser, pre-tokeniser and ``</w>`` word suffix,
  wrapped in transformers' ``CLIPTokenizer`` (``<|startoftext|>`` = 0, ``<|endoftext|>`` = 1,
  which is also the padding token, as in OpenAI's CLIP).
* T5: a SentencePiece-style Unigram model whose pieces are the corpus's words, wrapped in
  ``T5Tokenizer`` (``<pad>`` = 0, ``</s>`` = 1, ``<unk>`` = 2, sentinels ``<extra_id_i>`` at
  the end of the vocabulary, ``</s>`` appended).

Both save with ``save_pretrained``. The T5 tokenizer is a deterministic function of its
corpus; the BPE trainer breaks ties between equally frequent merges nondeterministically.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from typing import Iterable

from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, trainers
from transformers import CLIPTokenizer, T5Tokenizer

CLIP_BOS, CLIP_EOS = "<|startoftext|>", "<|endoftext|>"
T5_SPECIALS = ("<pad>", "</s>", "<unk>")
T5_EXTRA_IDS = 16


def train_clip_tokenizer(corpus: Iterable[str], vocab_size: int = 1024, model_max_length: int = 32) -> CLIPTokenizer:
    """A CLIP tokenizer whose BPE merges are learned from ``corpus``."""
    bpe = Tokenizer(models.BPE(continuing_subword_prefix="", end_of_word_suffix="</w>", unk_token=CLIP_EOS))
    # The same normaliser and pre-tokeniser as transformers' CLIPTokenizer, so the merges
    # learned here are the merges it applies.
    bpe.normalizer = normalizers.Sequence(
        [normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()]
    )
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(
                Regex(r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
                behavior="removed",
                invert=True,
            ),
            pre_tokenizers.ByteLevel(add_prefix_space=False),
        ]
    )
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[CLIP_BOS, CLIP_EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        end_of_word_suffix="</w>",
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    state = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    # the BPE model takes (left, right) pairs although CLIPTokenizer's hint says strings
    return CLIPTokenizer(vocab=state["vocab"], merges=merges, model_max_length=model_max_length)  # type: ignore[arg-type]


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
