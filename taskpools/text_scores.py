"""Class scores of a text-to-text model: the log-likelihood of each of a task's label words.

For the data-based merges on seq2seq pools (Fisher merging, RegMean, AdaMerging), a task's
classes are its label words (an accuracy task's target texts; a Spearman task's formatted
label values) and the score of class c for input x is log p(word_c | x) under teacher
forcing, summed over the word's tokens (its end-of-sequence token included). Softmax over
these scores is the model's distribution over the label words: the likelihood Fisher merging
differentiates and the entropy AdaMerging minimises.
"""

from __future__ import annotations

from typing import Any

import torch


def label_word_scores(module: Any, tokenizer: Any, encoded: dict[str, torch.Tensor], words: list[str]) -> torch.Tensor:
    """(B, C) log p(words[c] | inputs[b]) of a seq2seq ``module`` (T5-style: ``encoder``, ``prepare_decoder_input_ids_from_labels``).

    ``encoded`` holds the batch's ``input_ids`` and ``attention_mask``; the encoder runs once per batch and the
    decoder once per (input, word) pair. Differentiable in the module's parameters.
    """
    device = encoded["input_ids"].device
    targets = tokenizer(list(words), padding=True, return_tensors="pt")
    ids, mask = targets["input_ids"].to(device), targets["attention_mask"].to(device)
    hidden = module.get_encoder()(input_ids=encoded["input_ids"], attention_mask=encoded["attention_mask"]).last_hidden_state
    batch, classes = hidden.shape[0], ids.shape[0]
    labels = ids.repeat(batch, 1)  # (B*C, L): row b*C + c is word c for input b
    logits = module(
        encoder_outputs=(hidden.repeat_interleave(classes, 0),),
        attention_mask=encoded["attention_mask"].repeat_interleave(classes, 0),
        decoder_input_ids=module.prepare_decoder_input_ids_from_labels(labels=labels),
    ).logits
    token_log_p = torch.log_softmax(logits.float(), dim=-1).gather(-1, labels.unsqueeze(-1)).squeeze(-1)
    return (token_log_p * mask.repeat(batch, 1)).sum(-1).view(batch, classes)
