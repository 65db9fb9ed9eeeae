"""Built-in task pools. BUILTINS maps the ``type`` of a taskpool config to its class."""

BUILTINS: dict[str, str] = {
    "dummy": "fusionbench.taskpools.dummy:DummyTaskPool",
    "clip_vision": "fusionbench.taskpools.vision:CLIPVisionTaskPool",
    "glue": "fusionbench.taskpools.glue:GlueTaskPool",
}
