"""`msdetr train` then `msdetr eval` on a tiny synthetic dataset, through the command line; and the
fast tier's one `Trainer` run (one step: seeding, checkpoints, curves and pictures)."""

from __future__ import annotations

import json

import pytest
import torch

from msdetr.cli import main
from msdetr.config.loader import save_config
from msdetr.engine.metrics_log import read_metrics
from msdetr.engine.trainer import Trainer
from msdetr.model_io import build_from_file, load_model_file
from support.tiny import tiny_run_config


@pytest.mark.slow
def test_train_then_eval_from_the_command_line(tmp_path, capsys):
    cfg = tiny_run_config(train_images=4, val_images=3, epochs=2)
    save_config(cfg, tmp_path / "tiny.yaml")
    run = tmp_path / "runs" / "demo"
    assert main(["train", "--config", str(tmp_path / "tiny.yaml"), "--output", str(run), "--quiet"]) == 0
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "train.log", "loss.png", "map.png"):
        assert (run / name).is_file(), name
    assert len(list((run / "predictions").glob("*.png"))) == 1
    train_records = read_metrics(run, "train")
    assert [r["step"] for r in train_records] == [1, 2, 3, 4]  # 2 epochs x 2 steps
    evals = read_metrics(run, "eval")
    assert [r["epoch"] for r in evals] == [1, 2]  # 1-based
    assert all(len([k for k in r if k.startswith("bbox_")]) == 12 for r in evals)
    assert {k for k in evals[-1] if k.startswith("AP/")} == {
        f"AP/{n}" for n in ["circle", "square", "triangle", "star", "hexagon", "cross"]
    }

    # last.pt is an ordinary model file too, with the resolved config and classes
    model_file = load_model_file(run / "last.pt")
    assert model_file.config.num_classes == 6 and model_file.class_names[0] == "circle"
    assert model_file.extra["run_config"]["train"]["epochs"] == 2
    model, _ = build_from_file(run / "best.pt")
    assert isinstance(model, torch.nn.Module)

    # evaluating last.pt from the command line reproduces the final evaluation of training
    out = tmp_path / "eval.json"
    assert (
        main(
            [
                "eval",
                "--weights",
                str(run / "last.pt"),
                "--batch-size",
                "3",
                "--output",
                str(out),
                "--num-workers",
                "0",
            ]
        )
        == 0
    )
    result = json.loads(out.read_text())
    for key in ("bbox_mAP", "bbox_mAP_50", "bbox_AR_100"):
        assert result[key] == pytest.approx(evals[-1][key], abs=1e-6)
    assert "bbox_mAP_50" in capsys.readouterr().out


def test_one_step_run_writes_checkpoints_curves_and_pictures(tmp_path):
    cfg = tiny_run_config(train_images=2, val_images=1, epochs=1, max_steps=1, vis_images=1)
    result = Trainer(cfg, tmp_path / "run", verbose=False).fit()
    assert result.steps == 1 and result.skipped_steps == 0 and "bbox_mAP" in result.metrics
    for name in ("config.yaml", "last.pt", "best.pt", "metrics.jsonl", "loss.png", "map.png"):
        assert (tmp_path / "run" / name).is_file(), name
    assert len(list((tmp_path / "run" / "predictions").glob("*.png"))) == 1
    assert [r["step"] for r in read_metrics(tmp_path / "run", "train")] == [1]


def test_a_new_run_never_overwrites_an_old_one(tmp_path):
    from msdetr.engine.run_dir import new_run_dir

    assert new_run_dir(None, "tiny", base=tmp_path) == tmp_path / "tiny"
    (tmp_path / "tiny").mkdir()
    assert new_run_dir(None, "tiny", base=tmp_path) == tmp_path / "tiny"  # empty folder: fine
    (tmp_path / "tiny" / "config.yaml").write_text("name: tiny\n")
    assert new_run_dir(None, "tiny", base=tmp_path) == tmp_path / "tiny-2"
    assert new_run_dir(tmp_path / "tiny", "ignored") == tmp_path / "tiny-2"


def test_bad_override_is_a_one_line_error(tmp_path, capsys):
    assert main(["train", "--set", "model.num_querys=5"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model.num_querys" in err and "--set" in err
