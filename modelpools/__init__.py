"""Built-in model pools and model families. BUILTINS maps the ``type`` of a modelpool config to its class."""

BUILTINS: dict[str, str] = {
    "dummy": "fusionbench.modelpools.dummy:DummyModelPool",
    "clip": "fusionbench.modelpools.clip:CLIPModelPool",
    "open_clip": "fusionbench.modelpools.open_clip_pool:OpenCLIPModelPool",
    "t5": "fusionbench.modelpools.t5:FlanT5ModelPool",
}

# Model families (``FAMILIES`` registry): config.json model_type -> its declaration, beside the pool that loads it.
FAMILIES: dict[str, str] = {
    "clip": "fusionbench.modelpools.clip:CLIPFamily",
    "t5": "fusionbench.modelpools.t5:T5Family",
}
