"""The embedded mini world: procedurally generated tasks and tiny pretrained bases on a CPU.

Two worlds, each built deterministically from a seed under ``$FUSIONBENCH_HOME/mini``:

* vision: seven image-classification tasks, each of its own 32x32 image domain
  (``vision_tasks``, ``vision_domains``, ``vision_world``), and a tiny ``CLIPModel``
  pretrained contrastively on captions that never name some classes, shipped in the package
  (``shipped``, trained by ``base_training``);
* text: seven GLUE-like tasks over one distribution of synthetic sentences
  (``text_data``, ``text_language``, ``text_world``) and a tiny ``T5ForConditionalGeneration``
  pretrained on span corruption and half weakly labelled task prompts, also shipped.

``fusionbench.mini.build`` builds, finds, inspects and removes worlds; ``fusionbench.mini.pools``
fine-tunes their pools. The worlds are the requirements ``mini_vision`` and ``mini_text``
(``REQUIREMENTS``, found by the requirement registry), which the shipped mini configs name.
"""

REQUIREMENTS: dict[str, str] = {
    "mini_vision": "fusionbench.mini.requirements:MiniVision",
    "mini_text": "fusionbench.mini.requirements:MiniText",
}
