"""msdetr: DETR-family object detectors with MS-DETR mixed supervision."""

__version__ = "0.1.0"
