"""Compatibility name: the dataset-writing helpers live in `support.data` (import from there)."""

from support.data import annotation, colored_shapes_dataset, make_dataset, rectangle_polygon, write_image, write_json

__all__ = ["annotation", "colored_shapes_dataset", "make_dataset", "rectangle_polygon", "write_image", "write_json"]
