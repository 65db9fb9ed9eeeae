"""`fusionbench finetune`."""

from __future__ import annotations


def handle(words: list[str]) -> int:
    from fusionbench.finetune.command import finetune_command

    result = finetune_command(words)
    if result.complete:
        score = f"; {result.eval['metric']} on {result.eval['split']}: {result.eval['value']:.4f}" if result.eval else ""
        print(f"fine-tuned {result.step} steps in {result.seconds:.1f}s (final loss {result.losses[-1]:.4f}){score}; written to {result.output_dir}")
    else:
        print(f"stopped after {result.step} steps; the run resumes from {result.output_dir} when rerun with the same settings")
    return 0


HELP = """\
usage: fusionbench finetune model=M task=T mode=full|lora|llora [recipe=R] [taskpool=P] [KEY=VALUE ...]

Fine-tune a CLIP or T5 base on one task of a task pool and write the checkpoint in the
format the clip / t5 model pools load (L-LoRA paper, Tang et al., ICLR 2024): full (a
save_pretrained directory), lora (peft adapter + adapter_init.safetensors) or llora (L-LoRA
adapter with its init phi_0).
finetune.json (recipe, seed, steps, code version) and log.csv (loss curve) go beside it.

keys:
  model=M              hub id, local save_pretrained directory, or clip-vit-b32, clip-vit-b16,
                       clip-vit-l14, flan-t5-base, flan-t5-large
  task=T               a task of the task pool; its train split is the training data
  mode=...             full, lora, llora (linearised LoRA)
  recipe=clip_paper    clip_paper or t5_paper (paper Table 2; default by model), or a YAML file
  taskpool=P           default clip_ta8 (CLIP) / glue8 (T5); taskpool.KEY=VALUE overrides
  output_dir=PATH      default $FUSIONBENCH_HOME/checkpoints/<model>_<task><_lora-16|_l-lora-16|...>
  seed=0, limit=N      data order and dropout; train on a seeded sample of N examples
  micro_batch_size=N   examples per forward pass (gradients are accumulated to batch_size)
  save_every=500       steps between checkpoints of the partial run in <output_dir>.partial
  resume=true          continue a partial run from its last checkpoint (false: start over)
  max_steps_this_run=N stop after N steps (resumably); eval_split=test scores the result
  device=auto          auto, cpu, cuda or cuda:N; threads=0 torch CPU threads; progress=true

recipe keys (override the recipe): steps, lr, batch_size, optimizer (adam|adamw),
  weight_decay, schedule (cosine|constant), warmup_ratio, init_seed, lora.r, lora.alpha,
  lora.dropout, lora.targets=[q_proj,v_proj]
"""
