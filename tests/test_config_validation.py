"""Config checks when a config loads (ranges, options that need each other), each error naming
the file or `--set` that gave the value. Config level only: no model is built except where a
test checks what the model makes of a value (dn_number 0)."""

from __future__ import annotations

from pathlib import Path

import pytest

from msdetr.config.loader import apply_overrides, config_from_dict, load_config, preset_dir
from msdetr.config.origins import Origins
from msdetr.errors import MsdetrError


def error_of(source: str, overrides: list[str]) -> str:
    with pytest.raises(MsdetrError) as err:
        load_config(source, overrides)
    return str(err.value)


@pytest.mark.parametrize(
    ("preset", "override", "says"),
    [
        # model part without its supervision, and the reverse: both options named
        ("ddetr_pp_r50_300", "model.dac.enabled=true",
         "model.dac.enabled is true but supervision.dac.enabled is false"),
        ("ddetr_pp_r50_300", "supervision.dac.enabled=true",
         "model.dac.enabled is false but supervision.dac.enabled is true"),
        ("ddetr_pp_r50_300", "model.hybrid.num_queries=10", "supervision.hybrid.enabled is false"),
        ("ddetr_pp_r50_300", "supervision.group.enabled=true", "supervision.group.enabled is true"),
        ("msdetr_r50_300", "supervision.strategy=one_to_one", "supervision.strategy is 'one_to_one'"),
        # denoising ranges
        ("dino_r50_900", "model.denoising.dn_number=-1", "model.denoising.dn_number is -1; it must be >= 0"),
        ("dino_r50_900", "model.denoising.label_noise=2.0", "model.denoising.label_noise is 2.0; it must be in [0, 1]"),
        ("dn_dab_ddetr_r50_300", "model.denoising.num_groups=0", "model.denoising.num_groups is 0"),
        ("dino_r50_900", "model.denoising.box_noise=-0.1", "model.denoising.box_noise is -0.1"),
        # classification losses of streams the model does not have
        ("ddetr_pp_r50_300", "supervision.classification_loss.dac=iou_aware",
         "supervision.classification_loss.dac is 'iou_aware' but the model has no `dac` stream"),
        ("ddetr_pp_r50_300", "supervision.classification_loss.one_to_many=iou_aware",
         "no `one_to_many` stream"),
        ("dab_ddetr_r50_300", "supervision.classification_loss.encoder=iou_aware", "no `encoder` stream"),
        # ranges
        ("hdetr_pp_r50_300", "supervision.hybrid.k=0", "supervision.hybrid.k is 0; it must be an integer >= 1"),
        ("tiny", "model.hidden_dim=100", "model.hidden_dim is 100; it must be a multiple of 32"),
        ("tiny", "model.dropout=1.5", "model.dropout is 1.5"),
        ("tiny", "model.num_queries=0", "model.num_queries is 0"),
        ("tiny", "model.backbone.name=resnet9", "model.backbone.name is 'resnet9'"),
        ("tiny", "data.transforms.flip_probability=1.5", "data.transforms.flip_probability is 1.5"),
        ("tiny", "data.train.images=somewhere", "data.train.images is set without data.train.annotations"),
        ("tiny", "train.vis_score_threshold=3", "train.vis_score_threshold is 3"),
        # combinations the model builder refuses, now at load time
        ("ddetr_pp_r50_300", "model.two_stage=false", "model.mixed_selection needs model.two_stage: true"),
        ("dab_ddetr_r50_300", "model.two_stage=true", "model.anchor_queries is single-stage only"),
        # an extra stream with nothing to learn from
        ("hdetr_pp_r50_300", "supervision.loss_weights.hybrid={cls: 0, bbox: 0, giou: 0}",
         "supervision.loss_weights.hybrid are all 0"),
    ],
)
def test_bad_values_name_the_set_that_gave_them(preset, override, says):
    message = error_of(preset, [override])
    assert message.startswith(f"--set {override}: "), message
    assert says in message, message
    assert "\n" not in message


def test_valid_changes_still_load():
    assert not load_config("tiny", ["model.two_stage=false"]).model.two_stage  # single-stage tiny is fine
    cfg = load_config("ddetr_pp_r50_300", ["model.dac.enabled=true", "supervision.dac.enabled=true",
                                           "supervision.classification_loss.dac=iou_aware"])
    assert cfg.supervision.classification_loss.dac == "iou_aware"


def test_mask_head_without_mask_losses_is_refused():
    zero = "{cls: 2.0, bbox: 5.0, giou: 2.0, mask: 0.0, dice: 0.0}"
    message = error_of("tiny_seg", [f"supervision.loss_weights.one_to_one={zero}",
                                    f"supervision.loss_weights.one_to_many={zero}"])
    assert "model.mask_head.enabled is true" in message and "mask head would learn nothing" in message
    assert message.startswith("--set supervision.loss_weights.one_to_many=")  # the last source applied


def test_values_from_files_name_the_file_that_set_them(tmp_path: Path):
    base = tmp_path / "base.yaml"
    base.write_text("base: tiny\nmodel:\n  dropout: 1.5\n")
    child = tmp_path / "child.yaml"
    child.write_text("base: base.yaml\ntrain:\n  epochs: 3\n")
    assert error_of(str(child), []).startswith(f"{base}: model.dropout is 1.5")
    # the child overrides the base: the child is named
    child.write_text("base: base.yaml\nmodel:\n  dropout: 2.5\n")
    assert error_of(str(child), []).startswith(f"{child}: model.dropout is 2.5")
    # a --set that repairs it is fine; one that breaks something else is named
    assert load_config(str(child), ["model.dropout=0.1"]).model.dropout == 0.1
    # a pair: the file that turned one side on is named
    child.write_text("base: ddetr_pp_r50_300\nmodel:\n  dac:\n    enabled: true\n")
    message = error_of(str(child), [])
    assert message.startswith(f"{child}: model.dac.enabled is true but supervision.dac.enabled is false")


def test_preset_file_is_named_for_its_own_values(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: hdetr_pp_r50_300\nsupervision:\n  hybrid:\n    k: 0\n")
    assert error_of(str(bad), []).startswith(f"{bad}: supervision.hybrid.k is 0")
    # a value left at a preset's setting is named by that preset's file
    message = error_of("hdetr_pp_r50_300", ["model.hybrid.num_queries=0"])
    assert message.startswith("--set model.hybrid.num_queries=0: ")
    assert str(preset_dir()) not in message


def test_saved_config_with_set_names_the_set():
    saved = {"train": {"epochs": 3}}
    origins = Origins("runs/x/last.pt (saved config)")
    origins.record(saved, "runs/x/last.pt (saved config)")
    merged = apply_overrides(saved, ["train.epochs=0"], origins)
    with pytest.raises(MsdetrError, match=r"^--set train.epochs=0: train.epochs is 0"):
        config_from_dict(merged, where="runs/x/last.pt (saved config)", origins=origins)
    with pytest.raises(MsdetrError, match=r"^runs/x/last.pt \(saved config\): train.epochs is 0"):
        config_from_dict({"train": {"epochs": 0}}, where="runs/x/last.pt (saved config)")


def test_dn_number_zero_turns_contrastive_denoising_off():
    from msdetr.methods.registry import build_query_group_providers

    cfg = load_config("dino_r50_900", ["model.denoising.dn_number=0"])
    assert cfg.model.denoising.method == "cdn" and not cfg.model.denoising.enabled
    assert len(build_query_group_providers(cfg.model)) == 0  # no denoising queries are made
    on = load_config("dino_r50_900")
    assert on.model.denoising.enabled and len(build_query_group_providers(on.model)) == 1


def test_every_preset_still_loads():
    for path in sorted(preset_dir().glob("*.yaml")):
        load_config(path.stem)
