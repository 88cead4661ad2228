"""msdetr: DETR-family object detectors with MS-DETR mixed supervision."""

__version__ = "0.1.0"


def load(path, device="cpu"):
    """Load a checkpoint as a `msdetr.api.Detector` (see `msdetr.api.load`)."""
    from msdetr.api import load as _load

    return _load(path, device)


__all__ = ["__version__", "load"]
