"""`fusionbench merge`."""

from __future__ import annotations

from fusionbench.cli.words import with_group_options


def handle(words: list[str]) -> int:
    from fusionbench.config.compose import compose
    from fusionbench.export import MergeSchema, merge_to_folder

    saved = merge_to_folder(compose(words, MergeSchema))
    print(f"merged {len(saved.tasks)} tasks ({', '.join(saved.tasks)}) in {saved.merge_seconds:.2f}s; "
          f"model ({saved.save_format}) and model card written to {saved.out}")
    return 0


HELP = """\
usage: fusionbench merge method=M modelpool=P out=DIR [tasks=a,b] [save_format=auto] [overwrite=false] [stream=false] [GROUP.KEY=VALUE ...]

Merge a model pool with a fusion method, without evaluating it, and write the merged model
into DIR in the format its ecosystem loads with no FusionBench installed, with a model card
(README.md). The folder appears complete or not at all.

  full pools         save_pretrained of the merged model (safetensors), the base's config,
                     processor and tokenizer: CLIPModel / T5ForConditionalGeneration.from_pretrained(DIR)
  open_clip pools    open_clip_model.safetensors and open_clip_config.json:
                     open_clip.create_model_and_transforms("local-dir:DIR")
  LoRA pools         a peft adapter (adapter_config.json, adapter_model.safetensors):
                     PeftModel.from_pretrained(base, DIR); with modelpool.merge_space=delta the folded dense model
  L-LoRA pools       the folded dense model (exact); with save_format set to adapter, the L-LoRA adapter
                     with its init phi_0 (adapter_init.safetensors), which a mode=llora pool reads

groups (GROUP=OPTION picks configs/GROUP/OPTION.yaml, or your own YAML file by path):
  method=M          fusion method: {methods}
  modelpool=P       model pool: {modelpools}
  taskpool=T        data for the methods that need it (default: the one the model pool names): {taskpools}

top-level keys (defaults shown; streaming serves the methods that merge each tensor on its own ({tensorwise})):
{keys}
"""


def usage() -> str:
    """HELP with the valid options of each group and the methods that can stream filled in."""
    from fusionbench.api.plugins import METHODS
    from fusionbench.cli.keys import keys_help
    from fusionbench.export import MergeSchema

    tensorwise = ", ".join(name for name in METHODS.names() if METHODS.get(name).tensorwise)
    return with_group_options(HELP, tensorwise=tensorwise, keys=keys_help(MergeSchema))
