"""ResNet backbone from torchvision, with frozen BatchNorm (Deformable DETR style) or trainable norms."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.ops.misc import FrozenBatchNorm2d

from msdetr.config.model import BackboneConfig
from msdetr.errors import MsdetrError
from msdetr.modeling.norm import GroupNorm

_WEIGHTS_ENUMS = {
    "resnet18": "ResNet18_Weights",
    "resnet34": "ResNet34_Weights",
    "resnet50": "ResNet50_Weights",
    "resnet101": "ResNet101_Weights",
}
_LAYER_CHANNELS = {
    "resnet18": (64, 128, 256, 512),
    "resnet34": (64, 128, 256, 512),
    "resnet50": (256, 512, 1024, 2048),
    "resnet101": (256, 512, 1024, 2048),
}
def _group_norm(channels: int) -> nn.GroupNorm:
    return GroupNorm(32, channels)


# model.backbone.norm -> torchvision's `norm_layer`; the state dict keys are the same for all three.
_NORM_LAYERS = {"frozen_bn": FrozenBatchNorm2d, "batch_norm": nn.BatchNorm2d, "group_norm": _group_norm}
_FROZEN_PREFIXES = {
    "none": (),
    "stem": ("conv1.", "bn1."),
    "layer1": ("conv1.", "bn1.", "layer1."),
    "all": ("",),
}


class Backbone(nn.Module):
    """ResNet trunk returning strides 8/16/32 (and 4 if asked) with their padding masks.

    Attributes:
        strides: per returned level, e.g. (8, 16, 32)
        num_channels: per returned level, e.g. (512, 1024, 2048) for resnet50
    """

    def __init__(self, cfg: BackboneConfig):
        super().__init__()
        if cfg.name not in _WEIGHTS_ENUMS:
            raise MsdetrError(
                f"model.backbone.name: unknown backbone {cfg.name!r}; use one of {sorted(_WEIGHTS_ENUMS)}"
            )
        weights_enum = None
        if cfg.weights == "imagenet":
            weights_enum = getattr(torchvision.models, _WEIGHTS_ENUMS[cfg.name]).DEFAULT
        dilation = [False, False, cfg.dilation]
        if cfg.name in ("resnet18", "resnet34") and cfg.dilation:
            raise MsdetrError(f"model.backbone.dilation: {cfg.name} does not support dilation; set it to false")
        kwargs = {"replace_stride_with_dilation": dilation} if cfg.name not in ("resnet18", "resnet34") else {}
        resnet_fn = getattr(torchvision.models, cfg.name)
        try:
            resnet = resnet_fn(weights=weights_enum, norm_layer=_NORM_LAYERS[cfg.norm], **kwargs)
        except OSError as err:  # urllib's URLError, timeouts, a cache folder that cannot be written
            if weights_enum is None:
                raise
            raise MsdetrError(_download_failed(cfg.name, weights_enum.url, err)) from None
        if cfg.weights not in (None, "imagenet"):
            _load_local_weights(resnet, Path(cfg.weights))
        layers = ["layer2", "layer3", "layer4"]
        strides = [8, 16, 32]
        if cfg.return_stride4:
            layers.insert(0, "layer1")
            strides.insert(0, 4)
        if cfg.dilation:
            strides[-1] = 16
        channels = _LAYER_CHANNELS[cfg.name]
        self.num_channels = tuple(channels[int(name[-1]) - 1] for name in layers)
        self.strides = tuple(strides)
        self.body = IntermediateLayerGetter(resnet, return_layers={name: str(i) for i, name in enumerate(layers)})
        for name, param in self.body.named_parameters():
            if any(name.startswith(prefix) for prefix in _FROZEN_PREFIXES[cfg.freeze_at]):
                param.requires_grad_(False)

    def forward(self, images: Tensor, pixel_mask: Tensor) -> list[tuple[Tensor, Tensor]]:
        """
        images:     (B, 3, H, W) normalized, zero-padded
        pixel_mask: (B, H, W) bool, True on padding
        returns:    per level (features (B, C_l, H_l, W_l), mask (B, H_l, W_l) bool)
        """
        out = []
        for feat in self.body(images).values():
            mask = F.interpolate(pixel_mask[None].float(), size=feat.shape[-2:]).to(torch.bool)[0]
            out.append((feat, mask))
        return out


def _download_failed(name: str, url: str, err: OSError) -> str:
    """One line for ImageNet weights that could not be fetched: the three ways around it."""
    reason = getattr(err, "reason", None) or getattr(err, "strerror", None) or err
    cache = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    return (
        f"model.backbone.weights: imagenet: the ImageNet weights of {name} could not be downloaded from {url} "
        f"({reason}); without network, put that file at {cache}, or give a local copy with "
        f"--set model.backbone.weights=PATH, or take the backbone from a checkpoint with --init-backbone CKPT "
        f"--set model.backbone.weights=null (null alone: random init)"
    )


def _load_local_weights(resnet: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise MsdetrError(f"{path}: backbone weights file not found; set model.backbone.weights to an existing file")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = resnet.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise MsdetrError(
            f"{path}: not a torchvision {type(resnet).__name__} state dict "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}); export it with torchvision's key names"
        )
