"""`fusionbench profile`."""

from __future__ import annotations


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.profiling.measure import ProfileSchema, profile
    from fusionbench.profiling.tables import render

    result = profile(compose(words, ProfileSchema, groups=()))
    render(result)
    print(f"profile written to {result.output}")
    return 0


HELP = """\
usage: fusionbench profile [model=clip-vit-b16] [paradigms=full,linearized,lora,llora] [batch_size=N] [steps=N] [KEY=VALUE ...]

The L-LoRA paper's cost tables, measured on a randomly initialised architecture preset
(nothing is downloaded). Table 3: trainable and total parameters, trainable %, checkpoint
size, peak training memory. Table 4: training it/s (one optimizer step of the paper's
recipe), inference it/s (LoRA / L-LoRA also with the adapters folded into dense
weights), peak memories. Each figure is shown beside the paper's and as a ratio to full
fine-tuning; the whole profile is written as JSON. Every timing and memory figure comes
from a fresh process: peak memory is torch.cuda.max_memory_allocated on a GPU, the
process's peak RSS on a CPU.

keys (defaults shown):
{keys}

presets (configs/profile/<model>.yaml: the paper's recipe, the one Recipe type fine-tuning uses): {presets}
defaults on a CPU: {cpu} (one thread: a contended multi-threaded step is noisy)
defaults on a GPU: {gpu}, batch_size the recipe's
"""


def usage() -> str:
    """HELP with the keys of ``ProfileSchema``, the presets and the per-device defaults filled in."""
    from fusionbench.cli.keys import keys_help
    from fusionbench.profiling.measure import CPU_DEFAULTS, CUDA_DEFAULTS, ProfileSchema, profile_options

    def words(defaults: dict[str, int]) -> str:
        return " ".join(f"{key}={value}" for key, value in defaults.items())

    return HELP.format(keys=keys_help(ProfileSchema, skip=()), presets=", ".join(profile_options()), cpu=words(CPU_DEFAULTS), gpu=words(CUDA_DEFAULTS))
