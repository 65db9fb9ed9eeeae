"""Sweeps: every task subset x hyper-parameter grid (L-LoRA paper, Section 5.1), and their aggregates."""
