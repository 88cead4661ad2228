"""`--init-weights`: start from any checkpoint, re-initializing class heads when the class count differs."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from msdetr.cli import main
from msdetr.compat.official import config_from_official_args
from msdetr.config.loader import save_config
from msdetr.data.synthetic import ensure_synthetic_dataset
from msdetr.engine.init_weights import init_from_checkpoint
from msdetr.model_io import load_model_file, save_model_file
from msdetr.modeling.build import build_model
from support.tiny import final_weights, tiny_run_config


@pytest.mark.slow
def test_official_checkpoint_into_a_model_with_other_classes(tmp_path):
    from support.references import load_reference

    fixture = load_reference("official")
    official = fixture["configs"]["msdetr"]
    state = {k: fixture["state_dict"][k].float() for k in official["state_dict_keys"]}
    torch.save({"model": state, "args": official["args"]}, tmp_path / "official.pth")
    converted = load_model_file(tmp_path / "official.pth").state_dict

    cfg = replace(config_from_official_args(official["args"], state), num_classes=6)
    torch.manual_seed(0)
    model = build_model(cfg)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_from_checkpoint(model, tmp_path / "official.pth")

    assert report.shape_mismatch and all("class_head" in k for k in report.shape_mismatch)
    assert not report.missing and not report.unexpected
    after = model.state_dict()
    for name in report.shape_mismatch:  # re-initialized: the new model's own init
        assert after[name].shape[0] == 6 and torch.equal(after[name], before[name])
    for name in report.loaded:
        assert torch.equal(after[name], converted[name].to(after[name].dtype)), name
    assert "re-initialized" in report.summary()


def three_class_dataset(tmp_path):
    """The synthetic shapes with only circles, squares and triangles (COCO layout)."""
    source = ensure_synthetic_dataset(tmp_path / "six", train=4, val=2, size=64)
    root = tmp_path / "three"
    (root / "annotations").mkdir(parents=True)
    for split in ("train", "val"):
        coco = json.loads((source / "annotations" / f"instances_{split}.json").read_text())
        coco["categories"] = coco["categories"][:3]
        keep = {c["id"] for c in coco["categories"]}
        coco["annotations"] = [a for a in coco["annotations"] if a["category_id"] in keep]
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(coco))
        (root / split).symlink_to(source / split)
    return root


@pytest.mark.slow
def test_training_run_starts_from_a_six_class_checkpoint_on_three_classes(tmp_path):
    six = tiny_run_config()
    six.model.backbone.freeze_at = "all"
    torch.manual_seed(1)
    source_model = build_model(six.model)
    save_model_file(tmp_path / "six.pt", six.model, source_model.state_dict())

    three = tiny_run_config(max_steps=1, vis_images=0)
    three.model.backbone.freeze_at = "all"
    three.data = replace(three.data, root=str(three_class_dataset(tmp_path)))
    save_config(three, tmp_path / "three.yaml")
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "--config",
                str(tmp_path / "three.yaml"),
                "--init-weights",
                str(tmp_path / "six.pt"),
                "--output",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )

    log = (run / "train.log").read_text()
    assert "model.num_classes: 6 -> 3" in log and "re-initialized" in log and "class_head" in log
    weights = final_weights(run)
    assert weights["heads.encoder_class_head.weight"].shape[0] == 3
    frozen = [k for k in weights if k.startswith("backbone.")]
    assert frozen and all(torch.equal(weights[k], source_model.state_dict()[k]) for k in frozen)
