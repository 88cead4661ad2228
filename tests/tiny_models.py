"""Compatibility name: the tiny-model helpers live in `support.tiny` (import from there)."""

from support.tiny import pad_batch, padded_batch, tiny_model_config

__all__ = ["pad_batch", "padded_batch", "tiny_model_config"]
