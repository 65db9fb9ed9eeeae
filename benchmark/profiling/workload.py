"""The workloads behind ``fusionbench profile``: one fine-tuning paradigm of one architecture preset.

A :class:`Workload` builds a randomly initialised preset (no download) in one of the four
paradigms of the L-LoRA paper's cost tables (Tang et al., ICLR 2024, tables 3 and 4):

* ``full``: every parameter of the fine-tuned module is trained (CLIP: the vision
  transformer, its visual projection frozen as in the published checkpoints; Flan-T5: all).
* ``linearized``: full fine-tuning of the model's first-order Taylor expansion in all its
  parameters (``fusionbench.models.linearize.LinearizedModel``, a ``torch.func.jvp`` per forward).
* ``lora``: peft LoRA on the recipe's target modules (``lora.targets``).
* ``llora``: the same LoRA, linearised in closed form (``linearize_lora_``).

``train_step`` is one optimizer step of the paper's recipe on fixed random inputs (CLIP:
zero-shot cross-entropy against a fixed 10-class head; Flan-T5: teacher-forced
cross-entropy); ``infer_step`` one forward pass under ``no_grad``; ``fold_`` folds
(L-)LoRA adapters into dense weights, as FusionBench evaluates merged adapters.

Run as ``python -m fusionbench.profiling.workload SPEC.json RESULT.json``, it performs one
measurement (see :func:`measure`) in a fresh process, so that process's peak memory
belongs to that measurement alone.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ContextManager, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from fusionbench.api.errors import ConfigError, choices_text
from fusionbench.config.recipe import LoraSpec, Recipe

PARADIGMS = ("full", "linearized", "lora", "llora")
PHASES = ("train", "infer", "infer_folded")  # infer_folded: lora / llora only
FOLDABLE = ("lora", "llora")
OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
CLIP_CLASSES = 10  # width of the fixed zero-shot head of the CLIP training loss
CLIP_LOGIT_SCALE = 100.0


@dataclass(frozen=True)
class Setup:
    """What is profiled: an architecture preset trained with a fine-tuning ``Recipe`` (``configs/profile/*.yaml``)."""

    preset: str  # architecture preset (fusionbench.models.presets)
    recipe: Recipe  # the one recipe type of fine-tuning (optimizer, lr, batch size, lora.*, init seed)
    source_length: int = 128  # Flan-T5: input tokens per example
    target_length: int = 8  # Flan-T5: target tokens per example

    @property
    def family(self) -> str:
        return preset_family(self.preset)


def preset_family(preset: str) -> str:
    """The model family (clip | t5) of an architecture preset."""
    from fusionbench.models.presets import CLIP_PRESETS, preset_name

    return "clip" if preset_name(preset) in CLIP_PRESETS else "t5"


def check_paradigms(paradigms: Sequence[str]) -> None:
    """Raise ConfigError naming the valid paradigms when one is unknown or none is given."""
    unknown = [p for p in paradigms if p not in PARADIGMS]
    if unknown or not paradigms:
        raise ConfigError(f"unknown paradigm {unknown[0] if unknown else '(none)'!r}; choose among {choices_text(PARADIGMS)}")


def build_model(setup: Setup, device: str, seed: int) -> tuple[nn.Module, nn.Module]:
    """(module, root): the randomly initialised preset and the submodule that is fine-tuned.

    CLIP: a ``CLIPVisionModelWithProjection`` with the preset's vision shapes (the part the
    L-LoRA paper fine-tunes and FusionBench merges), root = its vision transformer. Flan-T5:
    the whole ``T5ForConditionalGeneration``. ``device="meta"`` allocates nothing.
    """
    from fusionbench.models.presets import build_preset, preset_config

    if setup.family == "t5":
        model = build_preset(setup.preset, device=device, seed=seed)
        return model, model
    from transformers import CLIPVisionModelWithProjection

    config = preset_config(setup.preset)
    vision = config.vision_config
    vision.projection_dim = config.projection_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.device(device):
            model = CLIPVisionModelWithProjection(vision)
    return model.eval(), model.vision_model


def apply_paradigm(model: nn.Module, root: nn.Module, paradigm: str, setup: Setup) -> tuple[nn.Module, nn.Module]:
    """(model, root) in ``paradigm``'s trainable form, changed in place where possible.

    Only the paradigm's trainable parameters require grad afterwards. ``linearized`` wraps
    root in a ``LinearizedModel`` (which replaces ``model`` itself when model is root).
    """
    check_paradigms([paradigm])
    model.requires_grad_(False)
    if paradigm in ("full", "linearized"):
        root.requires_grad_(True)
        if paradigm == "full":
            return model, root
        from fusionbench.models.linearize import LinearizedModel

        linear = LinearizedModel(root)
        if model is root:
            return linear, linear
        name = next(n for n, child in model.named_children() if child is root)
        setattr(model, name, linear)
        return model, linear
    from fusionbench.models.adapters import add_lora

    add_lora(root, lora_config(setup.recipe.lora), setup.recipe.init_seed, "lora.targets", setup.preset)  # injects the LoRA layers into root, in place
    if paradigm == "llora":
        from fusionbench.models.linearize import linearize_lora_

        linearize_lora_(root)
    return model, root


def lora_config(lora: LoraSpec) -> Any:
    """The recipe's peft ``LoraConfig``."""
    from peft import LoraConfig

    return LoraConfig(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=list(lora.targets))


def fold_(root: nn.Module) -> int:
    """Fold every peft LoRA / closed-form L-LoRA layer under ``root`` into its dense base Linear, in place.

    The layer becomes the base ``nn.Linear`` with ``W0 + Delta W`` (``s B A`` for LoRA,
    ``llora_delta`` for L-LoRA), so the folded model is the dense architecture. Returns the
    number of folded layers.
    """
    from peft.tuners.lora import Linear as LoraLinear

    from fusionbench.models.linearize import LinearizedLoraLinear

    adapters = [(p, m) for p, m in root.named_modules() if isinstance(m, (LinearizedLoraLinear, LoraLinear))]
    outer = [(p, m) for p, m in adapters if not any(p.startswith(q + ".") for q, _ in adapters if q != p)]
    with torch.no_grad():
        for path, module in outer:
            if isinstance(module, LinearizedLoraLinear):
                base, delta = module.model.base_layer, module.delta_weight()
            else:
                base, delta = module.base_layer, module.get_delta_weight(module.active_adapters[0])
            base.weight.add_(delta.to(base.weight.dtype))
            parent, _, child = path.rpartition(".")
            setattr(root.get_submodule(parent) if parent else root, child, base)
    return len(outer)


def parameter_counts(module: nn.Module) -> tuple[int, int]:
    """(trainable, total): total counts every floating tensor of the state dict once (frozen
    weights, a linearised model's stored theta_0, L-LoRA's stored phi_0)."""
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    seen: dict[int, int] = {}
    for tensor in module.state_dict(keep_vars=True).values():
        if tensor.is_floating_point():
            seen[id(tensor)] = tensor.numel()
    return trainable, sum(seen.values())


def checkpoint_bytes(root: nn.Module, paradigm: str, lora: LoraSpec, folder: Path) -> int:
    """Size on disk of one task's checkpoint of ``paradigm``, written into ``folder`` with FusionBench's savers.

    full / linearized: theta_t, the trainable parameters (a linearised model's theta_0 is the
    pretrained model, stored once for all tasks). lora: phi_t as a peft adapter. llora: phi_t
    and phi_0 (FusionBench's format stores the init with every L-LoRA checkpoint). The
    tensors written are zeros of the right names, shapes and dtypes: a safetensors file's
    size depends on nothing else, so ``root`` may live on the meta device.
    """
    from fusionbench.api.params import ParamDict
    from fusionbench.models.adapters import PEFT_PREFIX, save_adapter
    from fusionbench.models.linearize import llora_state

    def zeros(named: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
        return {prefix + name: torch.zeros(t.shape, dtype=t.dtype) for name, t in named.items()}

    check_paradigms([paradigm])
    if paradigm in ("full", "linearized"):
        inner: nn.Module = root.get_submodule("model") if paradigm == "linearized" else root
        ParamDict(zeros({n: p for n, p in inner.named_parameters() if p.requires_grad})).save(folder / "model.safetensors")
    elif paradigm == "lora":
        phi = {n: p for n, p in root.named_parameters() if p.requires_grad}
        save_adapter(folder, lora_config(lora), zeros(phi, PEFT_PREFIX), kind="lora")
    else:
        phi, phi0 = llora_state(root)
        save_adapter(folder, lora_config(lora), zeros(phi, PEFT_PREFIX), zeros(phi0, PEFT_PREFIX), kind="llora")
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


class Workload:
    """One paradigm of one preset on one device, with fixed random inputs and the recipe's optimizer."""

    def __init__(self, setup: Setup, paradigm: str, device: str, seed: int = 0) -> None:
        self.setup, self.paradigm, self.device = setup, paradigm, device
        model, root = build_model(setup, device, seed)
        config: Any = model.config
        self.attention: str | None = getattr(config, "_attn_implementation", None)
        generator = torch.Generator().manual_seed(seed + 1)
        b = setup.recipe.batch_size
        if setup.family == "clip":
            shape = (b, config.num_channels, config.image_size, config.image_size)
            self.head = F.normalize(torch.randn(CLIP_CLASSES, config.projection_dim, generator=generator), dim=-1).to(device)
            self.inputs: dict[str, Any] = {"pixel_values": torch.randn(shape, generator=generator).to(device)}
            self.labels = torch.randint(0, CLIP_CLASSES, (b,), generator=generator).to(device)
        else:
            t5: Any = model
            labels = torch.randint(2, config.vocab_size, (b, setup.target_length), generator=generator)
            self.inputs = {
                "input_ids": torch.randint(2, config.vocab_size, (b, setup.source_length), generator=generator).to(device),
                "attention_mask": torch.ones(b, setup.source_length, dtype=torch.long).to(device),
                "decoder_input_ids": t5._shift_right(labels).to(device),
                "use_cache": False,
            }
            self.labels = labels.to(device)
        self.model, self.root = apply_paradigm(model, root, paradigm, setup)
        self._optimizer: torch.optim.Optimizer | None = None

    def _attention(self) -> ContextManager[None]:
        """Forward-mode AD (the jvp of ``linearized``) needs SDPA's math backend; other paradigms use the default."""
        if self.paradigm == "linearized":
            from torch.nn.attention import SDPBackend, sdpa_kernel

            return sdpa_kernel(SDPBackend.MATH)
        return contextlib.nullcontext()

    def loss(self) -> torch.Tensor:
        with self._attention():
            out = self.model(**self.inputs)
        if self.setup.family == "clip":
            logits = CLIP_LOGIT_SCALE * F.normalize(out.image_embeds, dim=-1) @ self.head.T
            return F.cross_entropy(logits, self.labels)
        return F.cross_entropy(out.logits.flatten(0, 1), self.labels.flatten())

    def optimizer(self) -> torch.optim.Optimizer:
        if self._optimizer is None:
            params = [p for p in self.model.parameters() if p.requires_grad]
            r = self.setup.recipe
            self._optimizer = OPTIMIZERS[r.optimizer](params, lr=r.lr, weight_decay=r.weight_decay)
        return self._optimizer

    def train_step(self) -> None:
        """One optimizer step (forward, loss, backward, update) in training mode."""
        self.model.train()
        optimizer = self.optimizer()
        self.loss().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def infer_step(self) -> None:
        """One forward pass in evaluation mode without autograd."""
        self.model.eval()
        with torch.no_grad(), self._attention():
            self.model(**self.inputs)

    def fold_(self) -> int:
        """Fold the adapters into dense weights (lora / llora); see :func:`fold_`."""
        if self.paradigm not in FOLDABLE:
            raise ValueError(f"only {', '.join(FOLDABLE)} adapters fold into dense weights, not {self.paradigm}")
        return fold_(self.root)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)


def time_steps(step: Any, device: str, steps: int, warmup: int) -> list[float]:
    """Wall seconds of each of ``steps`` calls of ``step`` after ``warmup`` untimed ones (device synchronised)."""
    for _ in range(warmup):
        step()
    _sync(device)
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        _sync(device)
        seconds.append(time.perf_counter() - start)
    return seconds


@dataclass(frozen=True)
class Spec:
    """One measurement: a phase of a paradigm's workload."""

    setup: Setup
    paradigm: str
    phase: str  # train | infer | infer_folded
    device: str
    steps: int
    warmup: int
    seed: int = 0
    threads: int = 0  # torch intra-op threads (0: torch's default)


def measure(spec: Spec) -> dict[str, Any]:
    """Run one measurement in this process: per-step seconds, it/s (1 / median step) and, on CUDA, peak allocated bytes."""
    if spec.phase not in PHASES:
        raise ConfigError(f"unknown phase {spec.phase!r}; choose among {choices_text(PHASES)}")
    if spec.threads > 0:
        torch.set_num_threads(spec.threads)
    if spec.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats(spec.device)
    work = Workload(spec.setup, spec.paradigm, spec.device, spec.seed)
    if spec.phase == "infer_folded":
        work.fold_()
    step = work.train_step if spec.phase == "train" else work.infer_step
    seconds = time_steps(step, spec.device, spec.steps, spec.warmup)
    result: dict[str, Any] = {
        "step_seconds": seconds,
        "its": 1.0 / statistics.median(seconds),
        "attention": work.attention,
        "threads": torch.get_num_threads(),
    }
    if spec.device.startswith("cuda"):
        result["cuda_peak_bytes"] = int(torch.cuda.max_memory_allocated(spec.device))
    return result


def spec_from_json(data: dict[str, Any]) -> Spec:
    setup = Setup(**{**data["setup"], "recipe": Recipe.from_dict(data["setup"]["recipe"])})
    return Spec(**{**data, "setup": setup})


def spec_to_json(spec: Spec) -> dict[str, Any]:
    return asdict(spec)


def main(argv: Sequence[str]) -> int:
    """``python -m fusionbench.profiling.workload SPEC.json RESULT.json``."""
    spec_path, result_path = argv
    spec = spec_from_json(json.loads(Path(spec_path).read_text()))
    Path(result_path).write_text(json.dumps(measure(spec)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
