"""Fine-tuning that produces model pools: full, LoRA, L-LoRA and full-model linearised."""
