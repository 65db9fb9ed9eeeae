"""Analyses of a model pool: task-vector cosine, weight disentanglement, scaling, interference."""
