"""`--init-backbone`: the backbone comes from a checkpoint (ours or a torchvision state dict),
everything else keeps the new model's initialization."""

from __future__ import annotations

import pytest
import torch
import torchvision

from msdetr.cli import main
from msdetr.config.loader import save_config
from msdetr.engine.init_backbone import PREFIX, init_backbone_from_checkpoint
from msdetr.errors import MsdetrError
from msdetr.model_io import save_model_file
from msdetr.modeling.build import build_model
from support.tiny import tiny_run_config


def _source_checkpoint(tmp_path, cfg):
    torch.manual_seed(11)
    source = build_model(cfg.model)
    with torch.no_grad():  # no default values (BatchNorm's ones and zeros), so that copying shows
        for name, value in source.state_dict().items():
            if name.startswith(PREFIX) and value.is_floating_point():
                value.mul_(1 + 0.1 * torch.rand_like(value)).add_(0.01 * torch.randn_like(value))
    save_model_file(tmp_path / "source.pt", cfg.model, source.state_dict())
    return source.state_dict()


@pytest.mark.slow
def test_backbone_from_our_checkpoint_rest_untouched(tmp_path):
    cfg = tiny_run_config()
    source = _source_checkpoint(tmp_path, cfg)
    torch.manual_seed(12)
    model = build_model(cfg.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_backbone_from_checkpoint(model, tmp_path / "source.pt")

    after = model.state_dict()
    backbone = [k for k in after if k.startswith(PREFIX) and not k.endswith("num_batches_tracked")]
    assert sorted(report.loaded) == sorted(backbone)
    for name in backbone:
        assert torch.equal(after[name], source[name]), name
        assert not torch.equal(after[name], before[name]), name  # it did change
    rest = [k for k in after if not k.startswith("backbone.")]
    assert rest and all(torch.equal(after[k], before[k]) for k in rest)


def test_backbone_from_a_torchvision_state_dict(tmp_path):
    cfg = tiny_run_config()
    torch.manual_seed(3)
    resnet = torchvision.models.resnet18()
    torch.save(resnet.state_dict(), tmp_path / "resnet18.pth")
    model = build_model(cfg.model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    report = init_backbone_from_checkpoint(model, tmp_path / "resnet18.pth")
    after = model.state_dict()
    reference = resnet.state_dict()
    assert report.loaded and not report.unexpected  # fc.* is dropped, not reported
    for name in report.loaded:
        assert torch.equal(after[name], reference[name.removeprefix(PREFIX)]), name
    assert all(torch.equal(after[k], before[k]) for k in after if not k.startswith("backbone."))


@pytest.mark.slow
def test_a_backbone_of_another_resnet_is_refused(tmp_path):
    cfg = tiny_run_config()
    torch.save(torchvision.models.resnet34().state_dict(), tmp_path / "resnet34.pth")
    torch.save({"weight": [1, 2]}, tmp_path / "junk.pth")
    model = build_model(cfg.model)
    with pytest.raises(MsdetrError, match="does not fit the model's backbone"):
        init_backbone_from_checkpoint(model, tmp_path / "resnet34.pth")
    with pytest.raises(MsdetrError, match="neither an msdetr checkpoint nor a state dict"):
        init_backbone_from_checkpoint(model, tmp_path / "junk.pth")
    with pytest.raises(MsdetrError, match="not found"):
        init_backbone_from_checkpoint(model, tmp_path / "absent.pth")


@pytest.mark.slow
def test_train_cli_starts_from_the_backbone_with_frozen_batchnorm(tmp_path):
    """A run with --init-backbone and a fully frozen backbone ends with exactly the source's
    backbone weights (frozen BatchNorm included), while the transformer trained from a fresh init."""
    source_cfg = tiny_run_config()
    source_cfg.model.backbone.norm = "batch_norm"  # trained with BatchNorm, reused with frozen BN
    source = _source_checkpoint(tmp_path, source_cfg)

    cfg = tiny_run_config(max_steps=1, vis_images=0)
    cfg.model.backbone.norm = "frozen_bn"
    cfg.model.backbone.freeze_at = "all"
    save_config(cfg, tmp_path / "run.yaml")
    run = tmp_path / "run"
    code = main(
        ["train", "--config", str(tmp_path / "run.yaml"), "--init-backbone", str(tmp_path / "source.pt"),
         "--output", str(run), "--quiet"]
    )
    assert code == 0
    assert "init backbone from" in (run / "train.log").read_text()
    weights = torch.load(run / "last.pt", map_location="cpu", weights_only=False)["model"]
    backbone = [k for k in weights if k.startswith(PREFIX)]
    assert backbone and all(torch.equal(weights[k], source[k]) for k in backbone)
    assert not torch.equal(weights["heads.encoder_class_head.weight"], source["heads.encoder_class_head.weight"])


def test_resume_and_init_backbone_exclude_each_other(tmp_path, capsys):
    assert main(["train", "--resume", str(tmp_path), "--init-backbone", str(tmp_path / "x.pt")]) != 0
    assert "--resume and --init-backbone exclude each other" in capsys.readouterr().err
