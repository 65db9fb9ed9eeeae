"""`fusionbench finetune`."""

from __future__ import annotations


def handle(words: list[str]) -> int:
    from fusionbench.finetune.command import finetune_command

    result = finetune_command(words)
    if result.complete:
        score = f"; {result.eval.metric} on {result.eval.split}: {result.eval.value:.4f}" if result.eval else ""
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

keys (defaults shown; taskpool.KEY=VALUE overrides a key of the task pool):
{keys}

model families (defaults by the model's family):
{families}

recipe keys: each overrides the chosen recipe ({recipes}: the paper's Table 2); shown are the
defaults a recipe file's missing keys take (the one Recipe type, which fusionbench profile measures too):
{recipe_keys}
"""


def usage() -> str:
    """HELP with the keys of ``FinetuneArgs`` and of ``Recipe`` filled in."""
    from fusionbench.api.plugins import FAMILIES
    from fusionbench.cli.keys import keys_help
    from fusionbench.config.recipe import RECIPES, Recipe
    from fusionbench.finetune.command import FinetuneArgs

    families = "\n".join(
        f"  {family.label:<8}recipe={family.default_recipe} taskpool={family.default_taskpool}; presets: {', '.join(family.presets)}"
        for family in map(FAMILIES.get, FAMILIES.names())
    )
    keys = keys_help(FinetuneArgs, skip=())
    return HELP.format(keys=keys, families=families, recipes=", ".join(RECIPES), recipe_keys=keys_help(Recipe, skip=()))
