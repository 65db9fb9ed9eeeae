"""`fusionbench profile`."""

from __future__ import annotations


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.profiling.measure import ProfileSchema, profile
    from fusionbench.profiling.tables import render

    data = profile(compose(words, ProfileSchema, groups=()))
    render(data)
    print(f"profile written to {data['output']}")
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

keys:
  model=clip-vit-b16   clip-vit-b32, clip-vit-b16, clip-vit-l14, flan-t5-base
                       (configs/profile/<model>.yaml), or your own YAML file by path
  paradigms=...        a list of full, linearized, lora, llora: a,b or [a,b]
  batch_size=N         default: the paper's (64; L/14 16; Flan-T5 16) on a GPU, 2 on a CPU
  steps=N, warmup=N    timed and untimed steps per measurement (GPU 20 and 3, CPU 3 and 1)
  lora.r=N             LoRA rank (default: the recipe's, 16); lora.targets=q_proj,v_proj (CLIP) or q,v (Flan-T5)
  device=auto          auto, cpu, cuda or cuda:N
  threads=N            torch threads of each measuring process (0: torch's default;
                       default 1 on a CPU, where a contended multi-threaded step is noisy)
  output=PATH          the JSON file (default outputs/<timestamp>-profile-<model>/profile.json)
  seed=0
"""
