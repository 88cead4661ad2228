"""Checkpoint averaging (Mr. DETR's README recipe): `msdetr average-checkpoints` and its function;
and a model with Mr. DETR (score fusion on) exports to ONNX as its inference path."""

from __future__ import annotations

import pytest
import torch

from msdetr.cli import main
from msdetr.errors import MsdetrError
from msdetr.methods.mr_detr.averaging import average_state_dicts
from msdetr.methods.mr_detr.config import MrDetrModelConfig
from msdetr.model_io import load_model_file
from test_predict_support import random_checkpoint


@pytest.mark.slow
def test_average_is_the_weighted_sum_of_every_float_entry(tmp_path):
    paths = [random_checkpoint(tmp_path / f"{i}.pt", seed=i) for i in range(3)]
    out = tmp_path / "mean.pt"
    assert main(["average-checkpoints", *map(str, paths), "--weights", "0.8", "0.15", "0.05", "-o", str(out)]) == 0
    states = [load_model_file(p).state_dict for p in paths]
    mean = load_model_file(out)
    assert mean.config == load_model_file(paths[0]).config
    checked = 0
    for key, value in mean.state_dict.items():
        if value.is_floating_point():
            expected = 0.8 * states[0][key].double() + 0.15 * states[1][key].double() + 0.05 * states[2][key].double()
            torch.testing.assert_close(value, expected.float(), rtol=1e-6, atol=1e-7)
            checked += not torch.equal(states[0][key], states[1][key])
        else:
            assert torch.equal(value, states[0][key])
    assert checked > 10
    assert "train_state" not in (mean.extra or {})


@pytest.mark.parametrize(("weights", "says"), [
    ([0.75, 0.75], "sum to 1.5; they must sum to 1"),
    ([1.0], "got 1 weights for 2 checkpoints"),
    ([1.2, -0.2], "every weight must be > 0"),
])
def test_bad_weights_are_one_line_errors(weights, says):
    state = {"w": torch.ones(2)}
    with pytest.raises(MsdetrError, match=says):
        average_state_dicts([state, state], weights)


@pytest.mark.slow
def test_different_models_are_refused(tmp_path, capsys):
    a = random_checkpoint(tmp_path / "a.pt")
    b = random_checkpoint(tmp_path / "b.pt", num_queries=9)
    assert main(["average-checkpoints", str(a), str(b), "--weights", "0.5", "0.5", "-o", str(tmp_path / "o.pt")]) == 2
    err = capsys.readouterr().err
    assert "model config differs" in err and err.count("\n") == 1


@pytest.mark.slow
def test_a_model_with_mr_detr_exports_its_inference_path(tmp_path, onnx):
    from msdetr.export.inference_graph import InferenceGraph
    from msdetr.export.onnx_export import export_onnx, run_onnxruntime
    from msdetr.model_io import build_from_file

    checkpoint = random_checkpoint(tmp_path / "model.pt", eval_size=64, mixed_selection=True,
                                   mr_detr=MrDetrModelConfig(enabled=True, score_fusion=True))
    model, _ = build_from_file(checkpoint)
    graph = InferenceGraph(model.eval(), topk=20)
    image = torch.randn(1, 3, 64, 64)
    exported = export_onnx(graph, tmp_path / "model.onnx", 64, 64)
    with torch.no_grad():
        boxes, scores, labels = graph(image)
    got_boxes, got_scores, got_labels = run_onnxruntime(exported.path, image)
    assert torch.equal(got_labels, labels)
    torch.testing.assert_close(got_scores, scores, atol=1e-4, rtol=0)
    torch.testing.assert_close(got_boxes, boxes, atol=1e-2, rtol=0)
