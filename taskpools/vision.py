"""Zero-shot image classification with CLIP-style models (the L-LoRA paper's vision tasks).

Per task, the zero-shot head is the mean over the task's templates of the normalised text
embeddings of each class name (renormalised), computed with the evaluated model's own text
tower; logits are ``logit_scale * cosine(image embedding, head)``; the metric is accuracy.
Images are converted to RGB and go through the model's own processor.

Caches (under ``$FUSIONBENCH_HOME/cache``): preprocessed pixels per (dataset files, rows,
processor fingerprint) in chunks of ``CHUNK_SIZE`` images, and zero-shot heads per (text
model fingerprint, class names, templates). A repeated evaluation preprocesses nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Optional

import torch
import torch.nn.functional as F
from PIL.Image import Image

from fusionbench.api.errors import ConfigError, DataError, choices_text
from fusionbench.api.families import ZeroShotImageModel
from fusionbench.api.taskpool import TaskScore, binomial_stderr
from fusionbench.taskpools.base import DatasetTaskPool, DatasetTaskPoolConfig, TaskDefinition, packaged_json, template_fields
from fusionbench.taskpools.cache import cached_chunks, iter_batches, load_chunks
from fusionbench.taskpools.datasets_io import Selection, check_label_column, check_label_range
from fusionbench.utils.cache import content_hash

CHUNK_SIZE = 256  # images per preprocessing call and per cache file


@dataclass
class VisionTask(TaskDefinition):
    """A zero-shot image classification task: a dataset, its class names and prompt templates."""

    classnames: list[str] = field(default_factory=list)  # class i's name, in label order
    templates: list[str] = field(default_factory=list)  # prompts with a {c} placeholder for the class name
    image_column: str = "image"


@dataclass
class CLIPVisionTaskPoolConfig(DatasetTaskPoolConfig):
    definitions: dict[str, VisionTask] = field(default_factory=dict)  # custom tasks (replace catalog tasks of the same name)


@dataclass
class ImageBatch:
    """A batch of RGB images with their labels; ``pixel_values(model)`` preprocesses once per processor."""

    images: list[Image]
    labels: Optional[torch.Tensor]  # None in batches served without labels (TaskPool.unlabeled)
    _pixels: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)

    def pixel_values(self, model: ZeroShotImageModel) -> torch.Tensor:
        """The images through ``model``'s processor, on the model's device (memoised per processor)."""
        if model.preprocess_fingerprint not in self._pixels:
            self._pixels[model.preprocess_fingerprint] = model.preprocess(self.images).to(model.device)
        return self._pixels[model.preprocess_fingerprint]

    def select(self, index: torch.Tensor, model: ZeroShotImageModel) -> ImageBatch:
        """Rows ``index`` as a new batch that reuses this batch's pixels for ``model`` (preprocessed here once):
        fine-tuning draws shuffled batches from one preprocessed split."""
        pixels = self.pixel_values(model)
        rows = index.tolist()
        labels = None if self.labels is None else self.labels[index]
        return ImageBatch([self.images[i] for i in rows], labels, {model.preprocess_fingerprint: pixels[index.to(pixels.device)]})


class CLIPVisionTaskPool(DatasetTaskPool):
    """Zero-shot image classification: accuracy of CLIP-style models on image datasets."""

    name = "clip_vision"
    description = "zero-shot image classification with CLIP-style models (accuracy)"
    reference = "Tang et al., Parameter Efficient Multi-task Model Fusion with Partial Linearization, ICLR 2024"
    version = "1"
    Config = CLIPVisionTaskPoolConfig
    image_folders = True
    offline_hint = "taskpool=mini_vision7 runs fully offline"

    def __init__(self, config: Any, device: str = "cpu") -> None:
        super().__init__(config, device)
        self._heads: dict[str, torch.Tensor] = {}  # content hash -> head

    def catalog(self, config: Any) -> dict[str, VisionTask]:
        return {
            task: VisionTask(
                dataset=d["hf_dataset"], hf_config=d["hf_config"], classnames=d["classnames"], templates=d["templates"], **d.get("layout", {})
            )  # layout: the dataset's columns and split mapping where they differ from the defaults
            for task, d in packaged_json("clip_vision_tasks.json").items()
        }

    def check_definition(self, task: str, definition: VisionTask) -> None:
        if not definition.classnames:
            raise ConfigError(f"task {task!r} has no class names; set taskpool.definitions.{task}.classnames")
        if not definition.templates:
            raise ConfigError(f"task {task!r} has no prompt templates; set taskpool.definitions.{task}.templates")
        for template in definition.templates:
            if set(template_fields(template, f"template of task {task!r}")) != {"c"}:
                raise ConfigError(f"template {template!r} of task {task!r} must use the placeholder {{c}} for the class name and no other")

    # ------------------------------------------------------------------ data
    def _checked(self, task: str, split: str, limit: Optional[int]) -> Selection:
        d = self.definition(task)
        sel = self.selection(task, split, limit)
        check_label_column(sel.data, d.label_column, len(d.classnames), "class names", task, repr(d.dataset))
        if d.image_column not in sel.data.column_names:
            raise DataError(
                f"dataset {d.dataset!r} of task {task!r} has no image column {d.image_column!r}; its columns: "
                f"{choices_text(sel.data.column_names)}; set taskpool.definitions.{task}.image_column"
            )
        return sel

    def _raw_batches(self, task: str, sel: Selection, size: int) -> Iterator[tuple[list[Image], list[int]]]:
        d = self.definition(task)
        data = sel.data.select_columns([d.image_column, d.label_column])
        for start in range(0, len(data), size):
            rows = data[start : start + size]
            labels = [int(y) for y in rows[d.label_column]]  # PatchCamelyon on the hub stores booleans
            check_label_range(labels, len(d.classnames), "class names", task, repr(d.dataset))
            yield [image.convert("RGB") for image in rows[d.image_column]], labels

    def batches(self, task: str, split: str, batch_size: int, limit: Optional[int] = None) -> Iterator[ImageBatch]:
        """Labelled image batches of ``task``'s ``split``, in row order (unsupervised methods ignore labels)."""
        sel = self._checked(task, split, limit)
        for images, labels in self._raw_batches(task, sel, batch_size):
            yield ImageBatch(images, torch.tensor(labels))

    def _pixel_batches(self, model: ZeroShotImageModel, task: str, sel: Selection) -> Iterator[dict[str, torch.Tensor]]:
        d = self.definition(task)

        def build() -> Iterator[dict[str, torch.Tensor]]:
            for images, labels in self._raw_batches(task, sel, CHUNK_SIZE):
                yield {"pixel_values": model.preprocess(images).float(), "labels": torch.tensor(labels)}

        key = (sel.key, d.image_column, d.label_column, model.preprocess_fingerprint)
        return iter_batches(cached_chunks("taskpool-pixels", key, build), self.config.batch_size)

    # ---------------------------------------------------------------- model
    def zero_shot_head(self, model: ZeroShotImageModel, task: str) -> torch.Tensor:
        """(classes, dim) unit vectors: per class, the renormalised mean of its normalised template embeddings."""
        d = self.definition(task)
        key = content_hash(model.text_fingerprint, d.classnames, d.templates)
        if key not in self._heads:

            def build() -> Iterator[dict[str, torch.Tensor]]:
                with torch.no_grad():
                    per_template = [F.normalize(model.encode_texts([t.format(c=c) for c in d.classnames]).float(), dim=-1) for t in d.templates]
                yield {"head": F.normalize(torch.stack(per_template).mean(0), dim=-1)}

            self._heads[key] = load_chunks(cached_chunks("taskpool-heads", key, build))["head"]
        return self._heads[key].to(model.device)

    def logits(self, model: ZeroShotImageModel, pixel_values: torch.Tensor, task: str) -> torch.Tensor:
        """Scaled cosine similarities of the images to each class's zero-shot head."""
        head = self.zero_shot_head(model, task)
        embeddings = model.vision(pixel_values)
        if embeddings.shape[-1] != head.shape[-1]:
            raise ConfigError(
                f"the model's image embeddings have width {embeddings.shape[-1]} but its text embeddings have width "
                f"{head.shape[-1]} (task {task!r}); both towers must project to the same space: check the model pool"
            )
        return model.logit_scale * F.normalize(embeddings.float(), dim=-1) @ head.T

    def _predictions(self, model: ZeroShotImageModel, task: str, sel: Selection) -> tuple[torch.Tensor, torch.Tensor]:
        """Predicted classes and labels of every row of ``sel``."""
        predictions, labels = [], []
        with torch.no_grad():
            for batch in self._pixel_batches(model, task, sel):
                predictions.append(self.logits(model, batch["pixel_values"].to(model.device), task).argmax(-1).cpu())
                labels.append(batch["labels"])
        return torch.cat(predictions), torch.cat(labels)

    def predict(self, model: ZeroShotImageModel, task: str, split: str = "test") -> torch.Tensor:
        """Predicted class of every example of ``task``'s ``split``, in ``batches`` order."""
        return self._predictions(model, task, self._checked(task, split, None))[0]

    def evaluate(self, model: ZeroShotImageModel, tasks: list[str], split: str = "test") -> dict[str, TaskScore]:
        scores = {}
        for task in tasks:
            sel = self._checked(task, split, None)
            predictions, labels = self._predictions(model, task, sel)
            n = len(labels)
            accuracy = int((predictions == labels).sum()) / n
            scores[task] = TaskScore("accuracy", accuracy, n, binomial_stderr(accuracy, n), {"source": sel.source})
        return scores

    def loss(self, model: ZeroShotImageModel, batch: ImageBatch, task: str) -> torch.Tensor:
        """Cross-entropy of the zero-shot logits against the batch's labels."""
        return F.cross_entropy(self.class_logits(model, batch, task), self.labels(batch).to(model.device))

    def class_logits(self, model: ZeroShotImageModel, batch: ImageBatch, task: str) -> torch.Tensor:
        """The zero-shot logits of the batch's images."""
        return self.logits(model, batch.pixel_values(model), task)

    def size(self, batch: ImageBatch) -> int:
        return len(batch.images)

    def labels(self, batch: ImageBatch) -> torch.Tensor:
        if batch.labels is None:
            raise DataError("this batch was served without labels (TaskPool.unlabeled); a method that reads labels must declare it in its DataUse")
        return batch.labels

    def unlabeled(self, batch: ImageBatch) -> ImageBatch:
        return ImageBatch(batch.images, None, batch._pixels)
