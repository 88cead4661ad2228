"""Compatibility name (no tests here): the inference helpers live in `support.checkpoints` (import from there)."""

from support.checkpoints import random_checkpoint, squares_dataset, train_squares, trained_squares_checkpoint

__all__ = ["random_checkpoint", "squares_dataset", "train_squares", "trained_squares_checkpoint"]
