"""Images of every mode, bit depth and orientation load as the RGB picture they show."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from msdetr.data.image_io import EXIF_ORIENTATION_TAG, ImageReadError, load_rgb, read_header


def test_grayscale_repeats_the_channel(tmp_path):
    path = tmp_path / "gray.png"
    Image.fromarray(np.full((4, 6), 77, dtype=np.uint8), mode="L").save(path)
    pixels = load_rgb(path)
    assert pixels.shape == (4, 6, 3) and pixels.dtype == np.uint8
    assert (pixels == 77).all()


def test_rgba_is_composited_onto_white(tmp_path):
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[0, 0] = (200, 10, 10, 255)   # opaque red
    rgba[0, 1] = (0, 0, 0, 0)         # fully transparent (black underneath)
    rgba[1, 0] = (0, 0, 0, 128)       # half transparent black
    path = tmp_path / "rgba.png"
    Image.fromarray(rgba, mode="RGBA").save(path)
    pixels = load_rgb(path).astype(int)
    assert pixels[0, 0].tolist() == [200, 10, 10]
    assert pixels[0, 1].tolist() == [255, 255, 255]
    assert np.abs(pixels[1, 0] - 127).max() <= 1


def test_gray_with_alpha(tmp_path):
    path = tmp_path / "la.png"
    Image.fromarray(np.dstack([np.full((2, 2), 30, np.uint8), np.array([[255, 0], [255, 0]], np.uint8)]),
                    mode="LA").save(path)
    pixels = load_rgb(path)
    assert pixels[0, 0].tolist() == [30, 30, 30] and pixels[0, 1].tolist() == [255, 255, 255]


def test_palette_with_and_without_transparency(tmp_path):
    image = Image.new("P", (3, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * 762)
    image.putdata([0, 1, 1])
    plain, transparent = tmp_path / "p.png", tmp_path / "pt.png"
    image.save(plain)
    image.save(transparent, transparency=0)
    assert load_rgb(plain).tolist() == [[[10, 20, 30], [200, 100, 50], [200, 100, 50]]]
    assert load_rgb(transparent).tolist() == [[[255, 255, 255], [200, 100, 50], [200, 100, 50]]]


def test_sixteen_bit_is_scaled_to_eight_bits(tmp_path):
    values = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode in ("I;16", "I")
    pixels = load_rgb(path)
    assert pixels[..., 0].tolist() == [[0, 100, 255]]
    assert (pixels[..., 0] == pixels[..., 2]).all()


def _with_orientation(path, pixels: np.ndarray, orientation: int):
    exif = Image.Exif()
    exif[EXIF_ORIENTATION_TAG] = orientation
    Image.fromarray(pixels).save(path, exif=exif)


def test_exif_rotation_is_applied_and_reported(tmp_path):
    stored = np.zeros((2, 4, 3), dtype=np.uint8)  # stored 4 wide, 2 high; red top-left pixel
    stored[0, 0] = (255, 0, 0)
    path = tmp_path / "rotated.png"
    _with_orientation(path, stored, 6)  # display = rotate 90 degrees clockwise
    pixels = load_rgb(path)
    assert pixels.shape == (4, 2, 3)
    assert pixels[0, 1].tolist() == [255, 0, 0]  # top-left went to top-right
    header = read_header(path)
    assert (header.width, header.height, header.orientation) == (2, 4, 6)


def test_corrupt_and_truncated_files_raise(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\x00" * 100)
    with pytest.raises(ImageReadError, match="cannot decode"):
        load_rgb(garbage)
    with pytest.raises(ImageReadError, match="not found"):
        load_rgb(tmp_path / "absent.png")
    full = tmp_path / "full.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(full)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(full.read_bytes()[:2000])
    assert read_header(truncated, decode=False).width == 64  # the header alone looks fine
    with pytest.raises(ImageReadError):
        read_header(truncated, decode=True)
    with pytest.raises(ImageReadError):
        load_rgb(truncated)
