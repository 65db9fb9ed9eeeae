"""Model-level building blocks shared by model pools, fine-tuning and profiling: checkpoint
resolution and safe loading, LoRA / L-LoRA adapter formats, linearisation, architecture
presets and streamed safetensors merges. Nothing here knows a method or a task pool."""
