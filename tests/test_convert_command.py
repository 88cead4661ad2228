"""`msdetr convert` on a checkpoint in the official format writes a file msdetr loads and runs exactly."""

from __future__ import annotations

import argparse

import pytest
import torch

from msdetr.cli import main
from msdetr.model_io import build_from_file, load_model_file
from support.references import load_reference
from support.tiny import pad_batch


def _official_checkpoint(tmp_path, fixture, name):
    entry = fixture["configs"][name]
    state = {k: fixture["state_dict"][k] for k in entry["state_dict_keys"]}  # fp16, as stored
    path = tmp_path / f"{name}_official.pth"
    torch.save({"model": state, "args": argparse.Namespace(**entry["args"]), "epoch": 11}, path)
    return path, entry


@pytest.mark.parametrize("name", ["msdetr_pp", "ddetr_boxrefine_twostage"])
@pytest.mark.slow
def test_convert_then_load_reproduces_official(tmp_path, capsys, name):
    fixture = load_reference("official")
    src, entry = _official_checkpoint(tmp_path, fixture, name)
    dst = tmp_path / "converted.pth"
    assert main(["convert", str(src), str(dst)]) == 0
    assert "wrote" in capsys.readouterr().out
    model, mf = build_from_file(dst)
    assert mf.source == "msdetr" and mf.class_names[1] == "person" and not mf.config.padding_invariant
    images, mask = pad_batch(fixture["inputs"]["images"])
    with torch.no_grad():
        out = model.eval()(images, mask)
    torch.testing.assert_close(out.logits, entry["outputs"]["pred_logits"], atol=1e-4, rtol=0)
    torch.testing.assert_close(out.boxes, entry["outputs"]["pred_boxes"], atol=1e-4, rtol=0)
    # the official file loads directly too
    assert load_model_file(src).source == "official"


@pytest.mark.slow
def test_convert_reports_unplaced_keys(tmp_path, capsys):
    fixture = load_reference("official")
    src, entry = _official_checkpoint(tmp_path, fixture, "msdetr")
    ckpt = torch.load(src, weights_only=False)
    ckpt["model"]["transformer.mystery.weight"] = torch.zeros(3)
    torch.save(ckpt, src)
    code = main(["convert", str(src), str(tmp_path / "out.pth")])
    captured = capsys.readouterr()
    assert code == 2
    assert "transformer.mystery.weight" in captured.out
    assert "could not be placed" in captured.err and "\n" == captured.err[-1] and captured.err.count("\n") == 1
    assert main(["convert", str(src), str(tmp_path / "out.pth"), "--allow-unplaced"]) == 0


def test_convert_bad_input_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"not a checkpoint")
    assert main(["convert", str(bad), str(tmp_path / "o.pth")]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and err.count("\n") == 1
    torch.save({"state_dict": {}}, bad)
    assert main(["convert", str(bad), str(tmp_path / "o.pth")]) == 2
    assert "not an official checkpoint" in capsys.readouterr().err
