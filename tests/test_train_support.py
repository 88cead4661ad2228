"""Compatibility name (no tests here): the run-config helpers live in `support.tiny` (import from there)."""

from support.tiny import final_weights, shrunken_preset, tiny_run_config

__all__ = ["final_weights", "shrunken_preset", "tiny_run_config"]
