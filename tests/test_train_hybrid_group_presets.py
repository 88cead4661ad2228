"""The H-DETR / Group DETR presets (alone and with MS-DETR) train a couple of steps with a shrunken
model on a tiny synthetic set, and log their `hybrid` / `group` (and `one_to_many`) loss terms."""

from __future__ import annotations

import pytest
import torch

from msdetr.cli import main
from msdetr.engine.metrics_log import read_metrics

SHRINK = [
    "model.num_classes=6", "model.hidden_dim=32", "model.nheads=2", "model.enc_layers=1", "model.dec_layers=2",
    "model.dim_feedforward=64", "model.num_queries=8", "model.num_feature_levels=2", "model.enc_n_points=2",
    "model.dec_n_points=2", "model.backbone.name=resnet18", "model.backbone.weights=null",
    "data.root=null", "data.raw_category_ids=false", "data.synthetic.train=4", "data.synthetic.val=2",
    "data.synthetic.size=64", "data.transforms.train_min_sizes=[48,64]", "data.transforms.train_max_size=64",
    "data.transforms.crop_probability=0.0", "data.transforms.eval_min_size=64",
    "data.transforms.eval_max_size=64", "data.num_workers=0", "train.epochs=1", "train.max_steps=2",
    "train.reference_batch_size=2", "train.device=cpu", f"train.num_threads={torch.get_num_threads()}",
    "train.progress=false", "train.log_every=1", "train.vis_images=0", "eval.topk=20",
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("preset", "extra", "streams"),
    [
        ("hdetr_pp_r50_300", ["model.hybrid.num_queries=24"], ["one_to_one", "hybrid"]),
        ("msdetr_hdetr_pp_r50_300", ["model.hybrid.num_queries=24"], ["one_to_one", "one_to_many", "hybrid"]),
        ("group_ddetr_pp_r50_300", [], ["one_to_one", "group"]),
        ("msdetr_group_ddetr_pp_r50_300", [], ["one_to_one", "one_to_many", "group"]),
    ],
)
def test_preset_trains_and_logs_its_streams(tmp_path, preset, extra, streams):
    overrides = [*SHRINK, *extra, f"data.synthetic.directory={tmp_path / 'synthetic'}"]
    run = tmp_path / "run"
    argv = ["train", "--config", preset, "--output", str(run), "--quiet"]
    for item in overrides:
        argv += ["--set", item]
    assert main(argv) == 0
    records = read_metrics(run, "train")
    assert [r["step"] for r in records] == [1, 2]
    epoch = read_metrics(run, "epoch")[-1]  # the epoch's mean loss terms
    assert all(torch.isfinite(torch.tensor(v)) for k, v in epoch.items() if ".layer" in k)
    keys = set(epoch)
    for stream in streams:
        for layer in (0, 1):
            for term in ("cls", "bbox", "giou"):
                assert f"{stream}.layer{layer}.{term}" in keys, (stream, layer, term, sorted(keys))
    others = {"hybrid", "group", "one_to_many"} - set(streams)
    assert not any(f"{s}.layer" in k for s in others for k in keys)


def test_train_help_lists_the_presets(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = capsys.readouterr().out
    for preset in ("hdetr_pp_r50_300", "msdetr_hdetr_pp_r50_300", "group_ddetr_pp_r50_300",
                   "msdetr_group_ddetr_pp_r50_300"):
        assert f"  {preset} " in text


@pytest.mark.parametrize("preset", ["hdetr_pp_r50_300", "msdetr_hdetr_pp_r50_300", "group_ddetr_pp_r50_300",
                                    "msdetr_group_ddetr_pp_r50_300"])
def test_presets_carry_the_reference_recipes(preset):
    from msdetr.config.loader import load_config

    cfg = load_config(preset)
    m, s, t = cfg.model, cfg.supervision, cfg.train
    # Deformable-DETR++ as H-DETR's pp script: two-stage, box refine, mixed selection, look forward twice
    assert (m.num_queries, m.dim_feedforward, m.dropout) == (300, 2048, 0.0)
    assert m.two_stage and m.with_box_refine and m.mixed_selection and m.look_forward_twice
    assert (t.optimizer.lr, t.optimizer.lr_backbone, t.reference_batch_size, t.epochs) == (2e-4, 2e-5, 16, 12)
    assert (t.schedule.drop_epochs, t.clip_max_norm) == ([11], 0.1)
    msdetr = preset.startswith("msdetr_")
    assert m.mixed_supervision.enabled == msdetr and s.strategy == ("mixed" if msdetr else "one_to_one")
    one_to_one = s.loss_weights.one_to_one
    assert one_to_one.cls == (1.0 if msdetr else 2.0)
    if "hdetr" in preset:
        assert (m.hybrid.num_queries, s.hybrid.k, s.hybrid.official_normalization) == (1500, 6, True)
        assert s.loss_weights.hybrid == one_to_one  # lambda 1
        assert (s.encoder_class_cost, s.encoder_match_on_anchors) == (not msdetr, msdetr)
        assert m.group.num_groups == 1
    else:
        assert (m.group.num_groups, s.group.normalize_over_groups) == (6, True)
        assert s.loss_weights.group == one_to_one
        assert m.hybrid.num_queries == 0
