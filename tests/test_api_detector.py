"""`msdetr.load(path).predict(image)` on checkpoints with random weights (ours and official)."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
import torch
from PIL import Image

import msdetr
from msdetr.errors import MsdetrError
from msdetr.evaluation.postprocess import postprocess
from msdetr.inference.preprocess import EvalPreprocessor
from msdetr.model_io import build_from_file
from support.checkpoints import random_checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return random_checkpoint(tmp_path_factory.mktemp("api") / "random.pt", class_names=["cat", "", "dog"])


def _image(height=48, width=60, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def _assert_same(a, b, atol=1e-4):
    assert a.labels.tolist() == b.labels.tolist() and a.names == b.names
    torch.testing.assert_close(a.scores, b.scores, atol=atol, rtol=0)
    torch.testing.assert_close(a.boxes, b.boxes, atol=atol * 100, rtol=0)


def test_predict_accepts_every_image_type(checkpoint, tmp_path):
    model = msdetr.load(checkpoint)
    pixels = _image()
    path = tmp_path / "image.png"
    Image.fromarray(pixels).save(path)
    reference = model.predict(path, score=0.0)
    assert len(reference) == min(100, 12 * 3)  # top-k over all (query, class) pairs
    for image in (str(path), Image.fromarray(pixels), pixels, torch.from_numpy(pixels).permute(2, 0, 1)):
        _assert_same(model.predict(image, score=0.0), reference)


def test_detections_fields(checkpoint):
    model = msdetr.load(checkpoint)
    dets = model.predict(_image(40, 70), score=0.0)
    assert dets.image_size == (40, 70)
    assert dets.boxes.dtype == torch.float32 and dets.boxes.shape == (len(dets), 4)
    assert (dets.boxes[:, 0::2] >= 0).all() and (dets.boxes[:, 0::2] <= 70).all()
    assert (dets.boxes[:, 1::2] >= 0).all() and (dets.boxes[:, 1::2] <= 40).all()
    assert (dets.boxes[:, 2:] >= dets.boxes[:, :2]).all()
    assert (dets.scores[:-1] >= dets.scores[1:]).all()
    # names from the checkpoint, the index where a name is empty; category ids as saved (10 + index)
    expected_names = {0: "cat", 1: "1", 2: "dog"}
    assert dets.names == [expected_names[c] for c in dets.labels.tolist()]
    assert dets.category_ids == [10 + c for c in dets.labels.tolist()]


def test_score_threshold(checkpoint):
    model = msdetr.load(checkpoint)
    everything = model.predict(_image(), score=0.0)
    threshold = float(everything.scores[5])
    kept = model.predict(_image(), score=threshold)
    assert len(kept) == int((everything.scores >= threshold).sum()) >= 6
    assert (kept.scores >= threshold).all()


def test_boxes_are_in_pixels_of_the_original_image(checkpoint):
    """The API equals: evaluation preprocessing -> model -> boxes scaled to the original size."""
    model = msdetr.load(checkpoint)
    pixels = _image(96, 128)
    dets = model.predict(pixels, score=0.0)
    net, _ = build_from_file(checkpoint)
    image = EvalPreprocessor(model.settings.transforms)(torch.from_numpy(pixels).permute(2, 0, 1))
    assert image.shape[-2:] == (64, 85)  # the saved config evaluates at 64
    with torch.no_grad():
        out = net.eval()(image[None], torch.zeros(1, *image.shape[-2:], dtype=torch.bool))
    ref = postprocess(out.logits, out.boxes, torch.tensor([[96, 128]]))[0]
    ref_boxes = torch.stack([ref.boxes[:, 0].clamp(0, 128), ref.boxes[:, 1].clamp(0, 96),
                             ref.boxes[:, 2].clamp(0, 128), ref.boxes[:, 3].clamp(0, 96)], 1)
    torch.testing.assert_close(dets.scores, ref.scores, atol=1e-5, rtol=0)
    torch.testing.assert_close(dets.boxes, ref_boxes, atol=1e-3, rtol=0)


def test_a_batch_gives_what_each_image_gives_alone(checkpoint):
    model = msdetr.load(checkpoint)
    images = [_image(40, 64, seed=1), _image(64, 30, seed=2), _image(50, 50, seed=3)]
    together = model.predict(images, score=0.0)
    assert isinstance(together, list) and len(together) == 3
    for image, dets in zip(images, together):
        _assert_same(dets, model.predict(image, score=0.0))


def test_settings_come_from_the_checkpoint_and_can_be_changed(checkpoint):
    model = msdetr.load(checkpoint)
    assert model.settings.transforms.eval_min_size == 64 and model.settings.topk == 100
    model.settings.topk = 7
    assert len(model.predict(_image(), score=0.0)) == 7
    model.settings.transforms = model.settings.transforms.scaled_to(32)
    assert model.preprocessor(torch.zeros(3, 64, 64, dtype=torch.uint8)).shape == (3, 32, 32)


def test_to_device(checkpoint):
    model = msdetr.load(checkpoint)
    assert model.to("cpu") is model and model.device == torch.device("cpu")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    on_cpu = model.predict(_image(), score=0.0)
    on_gpu = model.to("cuda").predict(_image(), score=0.0)
    assert model.device.type == "cuda" and on_gpu.boxes.device.type == "cpu"
    _assert_same(on_gpu, on_cpu, atol=1e-3)


def test_load_errors(tmp_path):
    with pytest.raises(MsdetrError, match="not found"):
        msdetr.load(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"garbage")
    with pytest.raises(MsdetrError, match="cannot read"):
        msdetr.load(bad)


@pytest.mark.slow
def test_official_checkpoint_loads_with_coco_names(tmp_path):
    from support.references import load_reference

    fixture = load_reference("official")
    entry = fixture["configs"]["msdetr_pp"]
    state = {k: fixture["state_dict"][k] for k in entry["state_dict_keys"]}
    path = tmp_path / "official.pth"
    torch.save({"model": state, "args": argparse.Namespace(**entry["args"])}, path)
    model = msdetr.load(path)
    assert model.settings.transforms.eval_min_size == 800  # COCO defaults without a saved config
    model.settings.transforms = model.settings.transforms.scaled_to(96)  # keep the test fast
    dets = model.predict(_image(72, 96), score=0.0)
    assert len(dets) == 100 and int(dets.labels.max()) < 91
    coco_names = {0: "N/A", 1: "person", 18: "dog"}
    assert all(coco_names.get(c, n) == n for c, n in zip(dets.labels.tolist(), dets.names))
    assert dets.category_ids == dets.labels.tolist()  # raw COCO ids are the class indices
