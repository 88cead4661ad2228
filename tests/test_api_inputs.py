"""Inputs of inference: finding image files, reading any image type, evaluation preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from msdetr.config.data import IMAGENET_MEAN, IMAGENET_STD, TransformConfig
from msdetr.errors import MsdetrError
from msdetr.inference.image_inputs import find_images
from msdetr.inference.image_source import to_rgb_tensor
from msdetr.inference.preprocess import EvalPreprocessor


def _png(path, color=(10, 20, 30), size=(8, 6)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)
    return path


def test_find_images_files_folders_globs_in_order_without_duplicates(tmp_path):
    a = _png(tmp_path / "dir" / "b.png")
    b = _png(tmp_path / "dir" / "sub" / "a.jpg")
    (tmp_path / "dir" / "notes.txt").write_text("not an image")
    c = _png(tmp_path / "other" / "c.PNG")
    single = _png(tmp_path / "single.webp")
    found = find_images([str(single), str(tmp_path / "dir"), str(tmp_path / "**" / "*.PNG"), str(a)])
    # the folder is searched recursively and sorted; the pattern adds c; `a` is not repeated
    assert found.files == [single, a, b, c]
    assert found.problems == []


def test_find_images_reports_what_gave_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    found = find_images([str(tmp_path / "missing.jpg"), str(tmp_path / "empty"), str(tmp_path / "*.gif")])
    assert found.files == []
    reasons = dict(found.problems)
    assert reasons[str(tmp_path / "missing.jpg")] == "no such file or folder"
    assert "no image files" in reasons[str(tmp_path / "empty")]
    assert "matches no image files" in reasons[str(tmp_path / "*.gif")]


def test_explicit_file_is_taken_whatever_its_extension(tmp_path):
    odd = tmp_path / "picture.data"
    Image.new("RGB", (4, 4)).save(odd, format="PNG")
    assert find_images([str(odd)]).files == [odd]


def test_all_image_types_give_the_same_pixels(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(pixels).save(path)
    expected = torch.from_numpy(pixels).permute(2, 0, 1)
    as_float = torch.from_numpy(pixels).permute(2, 0, 1).float() / 255
    for image in (str(path), path, Image.fromarray(pixels), pixels, expected, as_float,
                  pixels.astype(np.float64) / 255, np.dstack([pixels, np.full((5, 7), 255, np.uint8)])):
        got = to_rgb_tensor(image)
        assert got.dtype == torch.uint8 and got.shape == (3, 5, 7)
        assert torch.equal(got, expected), type(image)


def test_grayscale_and_transparency():
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = to_rgb_tensor(gray)
    assert out.shape == (3, 3, 4) and torch.equal(out[0], out[2]) and int(out[1, 2, 3]) == 11
    assert torch.equal(to_rgb_tensor(torch.from_numpy(gray)[None]), out)
    clear = Image.new("RGBA", (2, 2), (0, 0, 0, 0))  # fully transparent -> white, as the datasets do
    assert int(to_rgb_tensor(clear).min()) == 255


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4, 2), np.uint8), "numpy arrays must be"),
    (torch.zeros(4, 5, 6, dtype=torch.uint8), "expected a (3, H, W)"),
    (torch.full((3, 2, 2), 2.0), "values in [0, 1]"),
    (np.zeros((3, 3), np.int16), "must be uint8"),
    (12, "unsupported image type int"),
    ("/no/such/file.png", "file not found"),
])
def test_bad_images_are_clear_errors(bad, message):
    with pytest.raises(MsdetrError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("]", r"\]")):
        to_rgb_tensor(bad)


def test_eval_preprocessing_size_and_normalization():
    pre = EvalPreprocessor(TransformConfig(eval_min_size=64, eval_max_size=80))
    gray = torch.full((3, 100, 150), 128, dtype=torch.uint8)
    out = pre(gray)
    # shorter side 64 would make the longer 96 > 80: the shorter becomes round(80 * 100 / 150) = 53
    # and the longer int(53 * 150 / 100) = 79 (Deformable DETR's rule, truncation included)
    assert out.shape == (3, 53, 79)
    expected = torch.tensor([(128 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)])
    torch.testing.assert_close(out.mean(dim=(1, 2)), expected, atol=1e-4, rtol=0)


def test_batch_pads_and_keeps_original_sizes():
    pre = EvalPreprocessor(TransformConfig(eval_min_size=32, eval_max_size=64))
    batch = pre.batch([torch.zeros(3, 40, 40, dtype=torch.uint8), torch.zeros(3, 20, 40, dtype=torch.uint8)])
    assert batch.images.shape == (2, 3, 32, 64)
    assert batch.orig_sizes.tolist() == [[40, 40], [20, 40]]
    # image 0 is 32 x 32: padding on the right; image 1 is 32 x 64: no padding
    assert batch.pixel_mask[0, :, 32:].all() and not batch.pixel_mask[0, :, :32].any()
    assert not batch.pixel_mask[1].any()
