"""ONNX export: onnxruntime on the CPU matches PyTorch on synthetic images."""

from __future__ import annotations

import json

import pytest
import torch

from msdetr.cli import main
from msdetr.data.image_io import load_rgb
from msdetr.data.synthetic import ensure_synthetic_dataset
from msdetr.evaluation.postprocess import postprocess
from msdetr.export.inference_graph import InferenceGraph
from msdetr.export.onnx_export import export_onnx, run_onnxruntime, smallest_dynamic_side
from msdetr.inference.preprocess import EvalPreprocessor
from msdetr.model_io import build_from_file
from support.checkpoints import random_checkpoint


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(checkpoint, graph, preprocessed synthetic val images (3, H_i, W_i))."""
    root = tmp_path_factory.mktemp("onnx")
    checkpoint = random_checkpoint(root / "model.pt", eval_size=96, class_names=["x", "y", "z"])
    data = ensure_synthetic_dataset(root / "synthetic", train=0, val=3, size=96, seed=3)
    model, _ = build_from_file(checkpoint)
    pre = EvalPreprocessor(EvalPreprocessor().config.scaled_to(96))
    files = sorted((data / "val").glob("*.png"))
    images = [pre(torch.from_numpy(load_rgb(p)).permute(2, 0, 1)) for p in files]
    return checkpoint, InferenceGraph(model.eval(), topk=30), images


def _assert_matches(got, expected, height, width):
    boxes, scores, labels = got
    ref_boxes, ref_scores, ref_labels = expected
    assert torch.equal(labels, ref_labels)
    torch.testing.assert_close(scores, ref_scores, atol=1e-3, rtol=0)
    scale = torch.tensor([width, height, width, height])
    torch.testing.assert_close(boxes / scale, ref_boxes / scale, atol=1e-3, rtol=0)


def test_graph_is_the_evaluation_postprocessing(setup):
    _, graph, images = setup
    image = images[0][None]
    boxes, scores, labels = graph(image)
    out = graph.detector(image, torch.zeros_like(image[:, 0], dtype=torch.bool), all_streams=False)
    ref = postprocess(out.logits, out.boxes, torch.tensor([image.shape[-2:]]), topk=30)[0]
    torch.testing.assert_close(scores[0], ref.scores)
    assert torch.equal(labels[0], ref.labels)
    torch.testing.assert_close(boxes[0], ref.boxes, atol=1e-4, rtol=0)
    # the graph never sees padding; the detector it was made from keeps its own settings
    assert graph.detector.cfg.padding_invariant is False
    assert build_from_file(setup[0])[0].cfg.padding_invariant is True


@pytest.mark.slow
def test_fixed_size_export_matches_pytorch(onnx, setup, tmp_path):
    _, graph, images = setup
    image = images[0][None]
    height, width = image.shape[-2:]
    exported = export_onnx(graph, tmp_path / "fixed.onnx", height, width,
                           metadata={"class_names": ["x", "y"]})
    assert exported.input_shape == [1, 3, height, width]
    with torch.no_grad():
        expected = graph(image)
    _assert_matches(run_onnxruntime(exported.path, image), expected, height, width)
    model = onnx.load(str(exported.path))
    assert [o.name for o in model.graph.output] == ["boxes", "scores", "labels"]
    assert json.loads({p.key: p.value for p in model.metadata_props}["class_names"]) == ["x", "y"]
    # inference graph only: the one-to-many stream's auxiliary FFN is not in it
    assert not [i.name for i in model.graph.initializer if "linear3" in i.name or "norm4" in i.name]


@pytest.mark.slow
def test_dynamic_export_matches_pytorch_at_other_sizes(onnx, setup, tmp_path):
    pytest.importorskip("onnxscript")
    _, graph, images = setup
    low = smallest_dynamic_side(graph)
    assert low == 33  # resnet18's stride 32 is the coarsest of the two levels
    exported = export_onnx(graph, tmp_path / "dynamic.onnx", 96, 96, dynamic=True)
    assert exported.input_shape == ["batch", 3, "height", "width"]
    sizes = {tuple(im.shape[-2:]) for im in images}
    assert len(sizes) > 1, "the synthetic images should have different sizes"
    for image in images:
        with torch.no_grad():
            expected = graph(image[None])
        _assert_matches(run_onnxruntime(exported.path, image[None]), expected, *image.shape[-2:])
    batch = torch.stack([images[0], images[0].flip(-1)])  # two images of one size
    with torch.no_grad():
        expected = graph(batch)
    _assert_matches(run_onnxruntime(exported.path, batch), expected, *batch.shape[-2:])


@pytest.mark.slow
def test_export_command(onnx, setup, tmp_path, capsys):
    checkpoint, _, _ = setup
    out = tmp_path / "cli.onnx"
    assert main(["export", "--weights", str(checkpoint), "--out", str(out), "--width", "128"]) == 0
    printed = capsys.readouterr().out
    assert "input images [1, 3, 96, 128]" in printed  # height from the checkpoint's eval size
    assert "labels identical" in printed
    metadata = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    assert metadata["class_names"] == ["x", "y", "z"] and metadata["eval_min_size"] == 96


def test_export_bad_size_is_a_one_line_error(setup, tmp_path, capsys):
    checkpoint, _, _ = setup
    assert main(["export", "--weights", str(checkpoint), "--out", str(tmp_path / "m.onnx"),
                 "--height", "16"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "at least 32 pixels" in err


@pytest.mark.parametrize("variant", ["dab_dn", "dino"])
@pytest.mark.slow
def test_dab_and_dino_models_export_without_denoising_queries(onnx, variant, setup, tmp_path):
    """Anchor (DAB) queries with DN-DETR denoising, and Deformable-DETR++ with DINO's contrastive
    denoising: the exported graph is the inference path (no denoising queries, no label embedding)."""
    from msdetr.config.model import DenoisingConfig

    if variant == "dab_dn":
        overrides = dict(two_stage=False, anchor_queries=True,
                         denoising=DenoisingConfig(method="dn", label_indicator=True))
    else:
        overrides = dict(mixed_selection=True, look_forward_twice=True, denoising=DenoisingConfig(method="cdn"))
    checkpoint = random_checkpoint(tmp_path / "model.pt", eval_size=96, **overrides)
    model, _ = build_from_file(checkpoint)
    graph = InferenceGraph(model.eval(), topk=30)
    image = setup[2][0][None]
    height, width = image.shape[-2:]
    exported = export_onnx(graph, tmp_path / f"{variant}.onnx", height, width)
    with torch.no_grad():
        expected = graph(image)
    _assert_matches(run_onnxruntime(exported.path, image), expected, height, width)
    names = [i.name for i in onnx.load(str(exported.path)).graph.initializer]
    assert not [n for n in names if "label_embed" in n]
    if variant == "dab_dn":
        assert [n for n in names if "ref_point_head" in n]  # positional queries from the anchors
