"""Text-to-text evaluation of seq2seq models (Flan-T5) on GLUE-style tasks.

Each example is rendered through the task's input template, the model generates greedily,
and the output is compared with the label's target text (exact match after stripping
whitespace; metric accuracy) or parsed as a number (metric spearman, e.g. STS-B; outputs
that are not numbers are counted and rank lowest). The packaged GLUE tasks report on GLUE's
validation split (its test labels are hidden) and select hyper-parameters on a seeded
hold-out of train.

Tokenised inputs are cached on disk per (dataset files, rows, template, tokenizer
fingerprint, max input length); batches are padded to their longest input, and inputs are
generated in order of length so batches hold inputs of similar length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
from torch.nn.utils.rnn import pad_sequence

from fusionbench.api.errors import ConfigError, DataError, choices_text
from fusionbench.api.families import TextToTextModel
from fusionbench.api.taskpool import TaskScore, binomial_stderr
from fusionbench.taskpools.base import DatasetTaskPool, DatasetTaskPoolConfig, TaskDefinition, packaged_json, template_fields
from fusionbench.taskpools.cache import cached_chunks, load_chunks
from fusionbench.taskpools.datasets_io import Selection, check_label_column, check_label_range
from fusionbench.taskpools.metrics import parse_float, spearman
from fusionbench.taskpools.text_scores import label_word_scores

METRICS = ("accuracy", "spearman")
TEMPLATE_SETS = ("paper", "improved")
CHUNK_SIZE = 1024  # examples per tokenizer call and per cache file


@dataclass
class TextTask(TaskDefinition):
    """A text-to-text task: an input template over dataset columns and the label's target text."""

    input_text: str = ""  # template with {column} placeholders, e.g. "sst2 sentence: {sentence}"
    targets: list[str] = field(default_factory=list)  # accuracy tasks: target text of label i
    metric: str = "accuracy"  # accuracy | spearman
    target_format: str = "{:.1f}"  # spearman tasks: the numeric label as target text (for the loss)
    label_values: list[float] = field(default_factory=list)  # spearman tasks: the values whose texts are its label words (empty: train's labels)


@dataclass
class GlueTaskPoolConfig(DatasetTaskPoolConfig):
    templates: str = "improved"  # template set of the packaged GLUE tasks: paper | improved
    max_new_tokens: int = 10
    max_input_length: int = 512  # longer inputs are truncated
    definitions: dict[str, TextTask] = field(default_factory=dict)  # custom tasks (replace catalog tasks of the same name)


@dataclass
class TextBatch:
    """Rendered inputs with their target texts and labels; ``encoded(model)`` tokenises once per tokenizer."""

    inputs: list[str]
    targets: Optional[list[str]]  # None in batches served without labels (TaskPool.unlabeled)
    labels: Optional[torch.Tensor]  # class indices (accuracy) or numbers (spearman); None without labels
    max_input_length: int
    _encoded: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict, repr=False)

    def encoded(self, model: TextToTextModel) -> dict[str, torch.Tensor]:
        """input_ids, attention_mask and (in labelled batches) labels (target ids, padding as -100) on the model's device."""
        if model.tokenizer_fingerprint not in self._encoded:
            tok = model.tokenizer
            inputs = tok(self.inputs, padding=True, truncation=True, max_length=self.max_input_length, return_tensors="pt")
            encoded = {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}
            if self.targets is not None:
                labels = tok(self.targets, padding=True, return_tensors="pt")["input_ids"]
                labels[labels == tok.pad_token_id] = -100
                encoded["labels"] = labels
            self._encoded[model.tokenizer_fingerprint] = {k: v.to(model.device) for k, v in encoded.items()}
        return self._encoded[model.tokenizer_fingerprint]

    def select(self, index: torch.Tensor, model: TextToTextModel) -> TextBatch:
        """Rows ``index`` as a new batch that reuses this batch's tokenisation for ``model`` (done here once), without
        the columns that are padding in every selected row: fine-tuning draws shuffled batches from one tokenised split."""
        encoded = self.encoded(model)
        index = index.to(encoded["input_ids"].device)
        mask, labels = encoded["attention_mask"][index], encoded["labels"][index]
        inputs_kept, targets_kept = mask.any(0), (labels != -100).any(0)
        selected = {"input_ids": encoded["input_ids"][index][:, inputs_kept], "attention_mask": mask[:, inputs_kept], "labels": labels[:, targets_kept]}
        rows = index.tolist()
        return TextBatch(
            [self.inputs[i] for i in rows], [self.targets[i] for i in rows], self.labels[index.cpu()], self.max_input_length,
            {model.tokenizer_fingerprint: selected},
        )


class GlueTaskPool(DatasetTaskPool):
    """GLUE-style text-to-text tasks: greedy generation, exact-match accuracy or Spearman."""

    name = "glue"
    description = "text-to-text GLUE tasks for seq2seq models (exact-match accuracy, STS-B Spearman)"
    reference = "Tang et al., Parameter Efficient Multi-task Model Fusion with Partial Linearization, ICLR 2024"
    version = "1"
    Config = GlueTaskPoolConfig
    offline_hint = "the embedded mini world (fusionbench mini) runs fully offline"

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        self._label_values: dict[str, dict[str, float]] = {}  # Spearman task -> label word -> value
        for key in ("max_new_tokens", "max_input_length"):
            if getattr(self.config, key) <= 0:
                raise ConfigError(f"taskpool.{key} must be a positive number of tokens, got {getattr(self.config, key)}")

    def catalog(self, config: Any) -> dict[str, TextTask]:
        if config.templates not in TEMPLATE_SETS:
            raise ConfigError(f"taskpool.templates={config.templates!r} is not a template set; valid: {choices_text(TEMPLATE_SETS)}")
        glue = packaged_json("glue_tasks.json")
        tasks = {}
        for task, d in glue["tasks"].items():
            template = d["templates"][config.templates]
            target = template["target_text"]
            tasks[task] = TextTask(
                dataset=glue["hf_dataset"],
                hf_config=task,
                validation_split="holdout",
                test_split=d["eval_split"],
                input_text=template["input_text"],
                metric=d["metric"],
                targets=[target[str(i)] for i in range(len(target))] if isinstance(target, dict) else [],
                target_format=target if isinstance(target, str) else "{:.1f}",
            )
        return tasks

    def check_definition(self, task: str, definition: TextTask) -> None:
        where = f"taskpool.definitions.{task}"
        names = template_fields(definition.input_text, f"input_text of task {task!r}")
        if not names or "" in names:
            raise ConfigError(f"task {task!r} needs an input_text template with named {{column}} placeholders; set {where}.input_text")
        if definition.metric not in METRICS:
            raise ConfigError(f"task {task!r} has metric {definition.metric!r}; valid metrics: {choices_text(METRICS)}")
        if definition.metric == "accuracy" and not definition.targets:
            raise ConfigError(f"accuracy task {task!r} has no target texts; set {where}.targets (target text of label i)")
        try:
            definition.target_format.format(1.0)
        except (ValueError, IndexError, KeyError) as exc:
            raise ConfigError(f"target_format {definition.target_format!r} of task {task!r} cannot format a number ({exc}); use e.g. '{{:.1f}}'") from None

    # ------------------------------------------------------------------ data
    def _checked(self, task: str, split: str, limit: Optional[int]) -> Selection:
        d = self.definition(task)
        sel = self.selection(task, split, limit)
        count = len(d.targets) if d.metric == "accuracy" else None
        check_label_column(sel.data, d.label_column, count, "target texts", task, repr(d.dataset))
        missing = [f for f in template_fields(d.input_text, "input_text") if f not in sel.data.column_names]
        if missing:
            raise DataError(
                f"dataset {d.dataset!r} of task {task!r} has no column {missing[0]!r} used by its input template; "
                f"its columns: {choices_text(sel.data.column_names)}"
            )
        return sel

    def _examples(self, task: str, sel: Selection, size: int) -> Iterator[tuple[list[str], list[Any]]]:
        """(rendered inputs, labels) in chunks of ``size`` rows."""
        d = self.definition(task)
        names = template_fields(d.input_text, "input_text")
        data = sel.data.select_columns(sorted({*names, d.label_column}))
        for start in range(0, len(data), size):
            rows = data[start : start + size]
            labels = rows[d.label_column]
            if d.metric == "accuracy":
                check_label_range(labels, len(d.targets), "target texts", task, repr(d.dataset))
            yield [d.input_text.format(**{f: rows[f][i] for f in names}) for i in range(len(labels))], labels

    def _target(self, task: str, label: Any) -> str:
        d = self.definition(task)
        return d.targets[label] if d.metric == "accuracy" else d.target_format.format(label)

    def batches(self, task: str, split: str, batch_size: int, limit: Optional[int] = None) -> Iterator[TextBatch]:
        """Labelled batches of ``task``'s ``split``, in row order (unsupervised methods ignore targets)."""
        sel = self._checked(task, split, limit)
        for inputs, labels in self._examples(task, sel, batch_size):
            yield TextBatch(inputs, [self._target(task, y) for y in labels], torch.tensor(labels), self.config.max_input_length)

    def _tokenised(self, model: TextToTextModel, task: str, sel: Selection) -> dict[str, torch.Tensor]:
        d = self.definition(task)

        def build() -> Iterator[dict[str, torch.Tensor]]:
            for inputs, labels in self._examples(task, sel, CHUNK_SIZE):
                ids = model.tokenizer(inputs, truncation=True, max_length=self.config.max_input_length)["input_ids"]
                yield {
                    "input_ids": torch.tensor([t for seq in ids for t in seq], dtype=torch.long),
                    "lengths": torch.tensor([len(seq) for seq in ids], dtype=torch.long),
                    "labels": torch.tensor(labels, dtype=torch.long if d.metric == "accuracy" else torch.float64),
                }

        key = (sel.key, d.input_text, d.label_column, d.metric, model.tokenizer_fingerprint, self.config.max_input_length)
        return load_chunks(cached_chunks("taskpool-tokens", key, build))

    # ---------------------------------------------------------------- model
    def generate(self, model: TextToTextModel, task: str, sel: Selection) -> tuple[list[str], torch.Tensor]:
        """Greedy outputs (stripped) for every row of ``sel``, and the rows' labels."""
        data = self._tokenised(model, task, sel)
        lengths = data["lengths"]
        starts = torch.cumsum(lengths, 0) - lengths
        order = torch.argsort(lengths, descending=True, stable=True).tolist()
        outputs = [""] * len(lengths)
        for s in range(0, len(order), self.config.batch_size):
            rows = order[s : s + self.config.batch_size]
            seqs = [data["input_ids"][starts[i] : starts[i] + lengths[i]] for i in rows]
            input_ids = pad_sequence(seqs, batch_first=True, padding_value=model.tokenizer.pad_token_id)
            mask = (torch.arange(input_ids.shape[1]) < lengths[rows, None]).long()
            with torch.no_grad():
                generated = model.module.generate(
                    input_ids=input_ids.to(model.device),
                    attention_mask=mask.to(model.device),
                    max_new_tokens=self.config.max_new_tokens,
                    do_sample=False,
                    num_beams=1,
                )
            for i, text in zip(rows, model.tokenizer.batch_decode(generated, skip_special_tokens=True)):
                outputs[i] = text.strip()
        return outputs, data["labels"]

    def predict(self, model: TextToTextModel, task: str, split: str = "test") -> torch.Tensor:
        """Per example of ``task``'s ``split``, in ``batches`` order: the index of the target text the output
        equals (-1 for none) for accuracy tasks, the parsed number (NaN when unparseable) for Spearman tasks."""
        d = self.definition(task)
        outputs, _ = self.generate(model, task, self._checked(task, split, None))
        if d.metric == "accuracy":
            return torch.tensor([d.targets.index(out) if out in d.targets else -1 for out in outputs])
        return torch.tensor([math.nan if (p := parse_float(out)) is None else p for out in outputs], dtype=torch.float64)

    def evaluate(self, model: TextToTextModel, tasks: list[str], split: str = "test") -> dict[str, TaskScore]:
        scores = {}
        for task in tasks:
            d = self.definition(task)
            sel = self._checked(task, split, None)
            outputs, labels = self.generate(model, task, sel)
            n = len(outputs)
            if d.metric == "accuracy":
                accuracy = sum(out == d.targets[y] for out, y in zip(outputs, labels.tolist())) / n
                scores[task] = TaskScore("accuracy", accuracy, n, binomial_stderr(accuracy, n), {"source": sel.source})
            else:
                parsed = [parse_float(out) for out in outputs]
                rho, stderr = spearman(parsed, labels.tolist())
                extra = {"source": sel.source, "unparseable": sum(p is None for p in parsed)}
                scores[task] = TaskScore("spearman", rho, n, stderr, extra)
        return scores

    def size(self, batch: TextBatch) -> int:
        return len(batch.inputs)

    def labels(self, batch: TextBatch) -> torch.Tensor:
        if batch.labels is None:
            raise DataError("this batch was served without labels (TaskPool.unlabeled); a method that reads labels must declare it in its DataUse")
        return batch.labels

    def unlabeled(self, batch: TextBatch) -> TextBatch:
        inputs_only = {key: {"input_ids": e["input_ids"], "attention_mask": e["attention_mask"]} for key, e in batch._encoded.items()}
        return TextBatch(batch.inputs, None, None, batch.max_input_length, inputs_only)

    def label_words(self, task: str) -> tuple[list[str], Optional[torch.Tensor]]:
        """The task's label words (its classes for ``class_logits``) and, for a Spearman task, the values they write:
        ``label_values`` of its definition, else the distinct labels of its train split (its label space)."""
        d = self.definition(task)
        if d.metric == "accuracy":
            return list(d.targets), None
        if task not in self._label_values:
            values = d.label_values or sorted(set(self._checked(task, "train", None).data[d.label_column]))
            self._label_values[task] = {d.target_format.format(v): float(v) for v in values}  # one word per distinct text
        texts = self._label_values[task]
        return list(texts), torch.tensor(list(texts.values()), dtype=torch.float64)

    def class_logits(self, model: TextToTextModel, batch: TextBatch, task: str) -> torch.Tensor:
        """log p(word | input) of each of the task's label words (``fusionbench.taskpools.text_scores``)."""
        return label_word_scores(model.module, model.tokenizer, batch.encoded(model), self.label_words(task)[0])

    def label_classes(self, batch: TextBatch, task: str) -> torch.Tensor:
        """Each label's class: its index among the label words (a Spearman label: the nearest label value's word)."""
        words, values = self.label_words(task)
        labels = self.labels(batch)
        return labels.long() if values is None else (labels.double()[:, None] - values[None, :]).abs().argmin(-1)

    def loss(self, model: TextToTextModel, batch: TextBatch, task: str) -> torch.Tensor:
        """The seq2seq cross-entropy of the batch's target texts."""
        return model.module(**batch.encoded(model)).loss
