"""Built-in synthetic shapes dataset in COCO layout (no download needed)."""

from msdetr.data.synthetic.cache import create_synthetic_dataset, default_cache_dir, ensure_synthetic_dataset
from msdetr.data.synthetic.generator import CATEGORIES, render_image, write_synthetic_dataset
from msdetr.data.synthetic.shapes import SHAPE_NAMES

__all__ = [
    "CATEGORIES",
    "SHAPE_NAMES",
    "create_synthetic_dataset",
    "default_cache_dir",
    "ensure_synthetic_dataset",
    "render_image",
    "write_synthetic_dataset",
]
