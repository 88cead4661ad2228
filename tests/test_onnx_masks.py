"""ONNX export of a detector with a mask head: the graph's masks are the evaluation masks, and
onnxruntime reproduces them."""

from __future__ import annotations

import pytest
import torch

from msdetr.cli import main
from msdetr.config.model import MaskHeadConfig
from msdetr.evaluation.postprocess import postprocess
from msdetr.export.inference_graph import InferenceGraph
from msdetr.export.onnx_export import export_onnx, run_onnxruntime
from msdetr.model_io import build_from_file
from support.checkpoints import random_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("onnx_masks")
    checkpoint = random_checkpoint(root / "mask.pt", eval_size=64, class_names=["x", "y", "z"],
                                   mask_head=MaskHeadConfig(enabled=True, mask_dim=32))
    model, _ = build_from_file(checkpoint)
    image = torch.randn(1, 3, 64, 80, generator=torch.Generator().manual_seed(0))
    return checkpoint, InferenceGraph(model.eval(), topk=20), image


def test_graph_masks_are_the_evaluation_masks(setup):
    _, graph, image = setup
    with torch.no_grad():
        boxes, scores, labels, masks = graph(image)
        out = graph.detector(image, torch.zeros_like(image[:, 0], dtype=torch.bool), all_streams=False)
    size = torch.tensor([[64, 80]])
    ref = postprocess(out.logits, out.boxes, size, topk=20, masks=out.masks, input_sizes=size)[0]
    assert masks.shape == (1, 20, 64, 80) and masks.dtype == torch.bool
    assert torch.equal(labels[0], ref.labels)
    assert torch.equal(masks[0], ref.masks)
    assert masks.any()


@pytest.mark.slow
def test_onnx_masks_match_pytorch(onnx, setup, tmp_path):
    _, graph, image = setup
    exported = export_onnx(graph, tmp_path / "mask.onnx", 64, 80)
    assert [o.name for o in onnx.load(str(exported.path)).graph.output] == ["boxes", "scores", "labels", "masks"]
    with torch.no_grad():
        boxes, scores, labels, masks = graph(image)
    got_boxes, got_scores, got_labels, got_masks = run_onnxruntime(exported.path, image)
    assert torch.equal(got_labels, labels)
    torch.testing.assert_close(got_scores, scores, atol=1e-3, rtol=0)
    assert got_masks.shape == masks.shape
    assert float((got_masks != masks).float().mean()) < 1e-3  # only logits within rounding of 0 may flip


@pytest.mark.slow
def test_export_command_checks_masks(onnx, setup, tmp_path, capsys):
    checkpoint, _, _ = setup
    assert main(["export", "--weights", str(checkpoint), "--out", str(tmp_path / "cli.onnx")]) == 0
    assert "of pixels differ" in capsys.readouterr().out
