"""Read images as 8-bit RGB, whatever their mode, bit depth or EXIF orientation.

- EXIF orientation is applied (`ImageOps.exif_transpose`), so sizes are as displayed.
- Grayscale (L, 1) is repeated to 3 channels; palette (P) is expanded.
- Transparency (LA, RGBA, PA, P with transparency) is composited onto white.
- 16-bit images (I;16*, and I with values above 255) are scaled to 8 bits (/257);
  float images (F) in [0, 1] are scaled by 255.
- CMYK, YCbCr, LAB, HSV are converted to RGB by Pillow.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

EXIF_ORIENTATION_TAG = 0x0112
_ROTATING_ORIENTATIONS = {5, 6, 7, 8}  # these swap width and height
_BACKGROUND = (255, 255, 255)


class ImageReadError(Exception):
    """An image file that is missing or cannot be decoded (message: the reason)."""


def _sixteen_bit_to_l(image: Image.Image) -> Image.Image:
    values = np.asarray(image).astype(np.float64)
    if image.mode == "F":
        scale = 255.0 if values.size and np.nanmax(values) <= 1.0 else 1.0
        values = np.nan_to_num(values) * scale
    elif image.mode.startswith("I;16") or (values.size and values.max() > 255):
        values = values / 257.0
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        image = _sixteen_bit_to_l(image)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("LA", "PA", "La", "RGBa"):
        image = image.convert("RGBA")
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, _BACKGROUND)
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def load_rgb(path: str | Path) -> np.ndarray:
    """Decode an image file to a (H, W, 3) uint8 array, EXIF orientation applied.

    Raises ImageReadError (message: why) when the file is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.array(_to_rgb(image), dtype=np.uint8)  # a writable copy
    except FileNotFoundError as err:
        raise ImageReadError("file not found") from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"cannot decode image ({err})") from err


@dataclass(frozen=True)
class ImageHeader:
    """Size as displayed (after EXIF orientation) and the EXIF orientation (1 = none)."""

    width: int
    height: int
    orientation: int


def _orientation(image: Image.Image) -> int:
    """EXIF orientation, 1 when absent or unreadable (e.g. metadata after a truncation)."""
    try:
        return int(image.getexif().get(EXIF_ORIENTATION_TAG, 1) or 1)
    except (OSError, ValueError, SyntaxError, TypeError):
        return 1


def read_header(path: str | Path, decode: bool = True) -> ImageHeader:
    """Read an image's size and orientation; with `decode`, also decode all pixels
    so truncated or corrupt files are caught. Raises ImageReadError."""
    try:
        with Image.open(path) as image:
            width, height = image.size
            if decode:
                image.load()
            orientation = _orientation(image)
    except FileNotFoundError as err:
        raise ImageReadError("file not found") from err
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as err:
        raise ImageReadError(f"cannot decode image ({err})") from err
    if orientation in _ROTATING_ORIENTATIONS:
        width, height = height, width
    return ImageHeader(width=width, height=height, orientation=orientation)
