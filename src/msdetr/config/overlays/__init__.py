"""Training methods as overlays on any base config: `BASE+METHOD+...` (see `methods` and `resolve`)."""

from msdetr.config.overlays.methods import METHOD_ORDER, METHODS
from msdetr.config.overlays.resolve import is_variant, split_variant

__all__ = ["METHODS", "METHOD_ORDER", "is_variant", "split_variant"]
