"""Turn what a user passes as an image into 8-bit RGB pixels, (3, H, W) uint8.

Accepted:
- a path (str or Path): decoded like the datasets do (`msdetr.data.image_io.load_rgb`:
  EXIF orientation applied, grayscale / palette / 16-bit / transparency handled);
- a PIL image: used as it is (no EXIF rotation), converted to RGB, transparency
  composited onto white;
- a numpy array: (H, W) grayscale, (H, W, 3) RGB or (H, W, 4) RGBA (alpha dropped),
  uint8, or float in [0, 1];
- a torch tensor: (3, H, W) or (1, H, W) or (H, W), uint8, or float in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from msdetr.data.image_io import ImageReadError, load_rgb
from msdetr.errors import MsdetrError

_WHITE = (255, 255, 255)


def _describe(image) -> str:
    shape = getattr(image, "shape", None)
    dtype = getattr(image, "dtype", None)
    if shape is None:
        return type(image).__name__
    return f"{type(image).__name__} of shape {tuple(shape)} and dtype {dtype}"


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, _WHITE)
        background.paste(rgba, mask=rgba.getchannel("A"))
        image = background
    return np.array(image.convert("RGB"), dtype=np.uint8)


def _float_to_uint8(values: Tensor, what: str) -> Tensor:
    if values.numel() and (values.min() < 0 or values.max() > 1):
        raise MsdetrError(f"{what}: float images must hold values in [0, 1]; scale it, or pass uint8 pixels")
    return (values * 255).round().to(torch.uint8)


def _channels_first(pixels: Tensor, what: str) -> Tensor:
    """(H, W) / (1, H, W) / (3, H, W) -> (3, H, W)."""
    if pixels.dim() == 2:
        pixels = pixels[None]
    if pixels.dim() != 3 or pixels.shape[0] not in (1, 3):
        raise MsdetrError(f"{what}: expected a (3, H, W), (1, H, W) or (H, W) tensor; "
                          "pass channels first")
    return pixels.expand(3, -1, -1).contiguous()


def to_rgb_tensor(image, what: str = "image") -> Tensor:
    """An image (path, PIL image, numpy array or tensor) as (3, H, W) uint8 RGB on the CPU.

    Raises MsdetrError naming `what` for unsupported types, shapes or values, and for
    files that cannot be read.
    """
    if isinstance(image, (str, Path)):
        try:
            array = load_rgb(image)
        except ImageReadError as err:
            raise MsdetrError(f"{image}: {err}; pass a readable image file") from None
        return torch.from_numpy(array).permute(2, 0, 1).contiguous()
    if isinstance(image, Image.Image):
        return torch.from_numpy(_pil_to_rgb(image)).permute(2, 0, 1).contiguous()
    if isinstance(image, np.ndarray):
        if image.ndim == 3 and image.shape[2] in (3, 4):
            tensor = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1)
        elif image.ndim == 2:
            tensor = torch.from_numpy(np.ascontiguousarray(image))
        else:
            raise MsdetrError(f"{what}: numpy arrays must be (H, W), (H, W, 3) or (H, W, 4), "
                              f"got {_describe(image)}")
        return to_rgb_tensor(tensor, what)
    if isinstance(image, Tensor):
        pixels = image.detach().cpu()
        if pixels.is_floating_point():
            pixels = _float_to_uint8(pixels.float(), what)
        elif pixels.dtype != torch.uint8:
            raise MsdetrError(f"{what}: integer images must be uint8, got {_describe(image)}")
        return _channels_first(pixels, what)
    raise MsdetrError(f"{what}: unsupported image type {type(image).__name__}; pass a file path, "
                      "a PIL image, a numpy array or a torch tensor")
