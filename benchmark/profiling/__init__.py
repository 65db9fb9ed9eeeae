"""Cost profiles: the L-LoRA paper's Tables 3 and 4 on architecture presets."""
