"""Make `tests/fixtures/dn_dab_deformable_reference.pt` from the DAB / DN-DAB-Deformable-DETR reference code.

Not run in CI:

    python tests/make_dab_fixture.py --dn-detr PATH/TO/IDEA-Research/DN-DETR \
        --dab-detr PATH/TO/IDEA-Research/DAB-DETR [--out ...]

The reference models (DN-DETR's `models/dn_dab_deformable_detr`: DAB-Deformable-DETR with DN-DETR's
denoising, and DAB-DETR's `models/dab_deformable_detr`: DAB-Deformable-DETR alone) run on the CPU:
`.cuda()` / `.to("cuda")` go to the CPU, the compiled deformable attention is replaced by the
reference's own pure-PyTorch `ms_deform_attn_core_pytorch`, torchvision builds the ResNet-50
without pretrained weights. Small sizes: hidden 256 (the reference's sine embedding is 128 features
per coordinate), 1 encoder and 2 decoder layers, 10 queries, dim_feedforward 256.

Weights: `fixture_weights` (a function of each reference parameter's name and shape, so the test
regenerates them instead of reading megabytes): random, none on special values that hide errors
(sampling-offset biases are off the pixel lattice, no zero-initialized layer). The backbone is frozen
(`lr_backbone 0`, ours `freeze_at: all`; the MS-DETR conformance covers it) and a single feature level
keeps the fixture small (gradients of every trainable parameter in float16, 5000 fixed entries of
the larger ones, plus float32 norms).

Records per model (see `tests/test_conformance_dab.py`): eval-mode outputs (no denoising); a training
forward (DN: with denoising after `torch.manual_seed(DN_SEED)`, outputs of the matching and denoising
queries), the criterion's losses (matching, DN: + `tgt_loss_*`), the weighted total, and every
trainable parameter's gradient.
"""

from __future__ import annotations

import argparse
import sys
import zlib
from argparse import Namespace
from pathlib import Path

import torch

from support.reference_stubs import (
    DEFORM_ATTN_EXTENSION,
    TIMM,
    import_from,
    pytorch_sampling_function,
    stub_reference_imports,
)

DN_SEED = 5


def inputs():
    g = torch.Generator().manual_seed(3)
    images = [torch.randn(3, 160, 192, generator=g), torch.randn(3, 176, 128, generator=g)]
    targets = [
        {"boxes": torch.tensor([[0.3, 0.4, 0.2, 0.3], [0.7, 0.6, 0.3, 0.2], [0.5, 0.5, 0.6, 0.7]]),
         "labels": torch.tensor([3, 17, 60])},
        {"boxes": torch.tensor([[0.4, 0.3, 0.5, 0.4], [0.8, 0.8, 0.2, 0.25]]), "labels": torch.tensor([1, 90])},
    ]
    return images, targets


ARGS = dict(hidden_dim=256, nheads=8, enc_layers=1, dec_layers=2, dim_feedforward=256, dropout=0.0,
            num_queries=10, num_feature_levels=1, enc_n_points=4, dec_n_points=4, two_stage=False,
            backbone="resnet50", dilation=False, lr_backbone=0.0, masks=False, position_embedding="sine",
            set_cost_class=2.0, set_cost_bbox=5.0, set_cost_giou=2.0, cls_loss_coef=1.0, bbox_loss_coef=5.0,
            giou_loss_coef=2.0, focal_alpha=0.25, scalar=5, label_noise_scale=0.2, box_noise_scale=0.4,
            num_classes=91)


def fixture_weights(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    """Deterministic random weights by reference parameter name (seeded by the name's CRC32)."""
    out = {}
    for name, shape in shapes.items():
        g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
        noise = torch.randn(shape, generator=g)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            out[name] = torch.zeros(shape, dtype=torch.int64)
        elif "bn" in name or "downsample.1" in name:  # frozen batch norm
            out[name] = (1.0 + 0.1 * noise.abs()) if leaf in ("weight", "running_var") else 0.1 * noise
        elif name.endswith("sampling_offsets.bias"):
            out[name] = 2.0 * noise  # off the pixel lattice
        elif name.startswith("class_embed") and leaf == "bias":
            out[name] = -4.6 + 0.3 * noise
        elif leaf == "weight" and len(shape) == 1:  # layer / group norm
            out[name] = 1.0 + 0.1 * noise
        elif leaf == "bias" or len(shape) == 1:
            out[name] = 0.05 * noise
        elif name.endswith(("embed.weight", "label_enc.weight")) and "class" not in name and "bbox" not in name:
            out[name] = noise  # embeddings N(0, 1)
        else:
            fan_in = int(torch.tensor(shape[1:]).prod())
            out[name] = noise / fan_in**0.5
    return out


GRAD_SAMPLE = 5000  # gradients of larger tensors: this many fixed entries (and the full norm)


def sampled_entries(numel: int) -> torch.Tensor | None:
    """The flat indices of a gradient kept in the fixture (None: all of it)."""
    if numel <= 10_000:
        return None
    return torch.randperm(numel, generator=torch.Generator().manual_seed(numel))[:GRAD_SAMPLE]


def build(root: Path, package: str):
    """The reference DAB-Deformable-DETR of `package` (DN-DETR's or DAB-DETR's), with `fixture_weights`."""
    model_module, backbone_module, transformer_module, matcher_module, attn_module, func_module, misc = (
        import_from(root, [f"models.{package}.{name}" for name in (
            "dab_deformable_detr", "backbone", "deformable_transformer", "matcher", "ops.modules.ms_deform_attn",
            "ops.functions.ms_deform_attn_func")] + ["util.misc"]))
    sys.path.insert(0, str(root))  # the reference imports util.* lazily

    attn_module.MSDeformAttnFunction = pytorch_sampling_function(func_module.ms_deform_attn_core_pytorch)
    backbone_module.is_main_process = lambda: False  # no pretrained download
    args = Namespace(**ARGS)
    torch.manual_seed(0)
    backbone = backbone_module.build_backbone(args)
    transformer = transformer_module.build_deforamble_transformer(args)
    model = model_module.DABDeformableDETR(backbone, transformer, num_classes=args.num_classes,
                                           num_queries=args.num_queries, num_feature_levels=args.num_feature_levels,
                                           aux_loss=True, with_box_refine=True, two_stage=False, use_dab=True)
    state = model.state_dict()
    model.load_state_dict(fixture_weights({k: tuple(v.shape) for k, v in state.items()}))
    base = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0,
            "tgt_loss_ce": 1.0, "tgt_loss_bbox": 5.0, "tgt_loss_giou": 2.0}
    weight_dict = dict(base)
    for i in range(args.dec_layers - 1):
        weight_dict.update({f"{k}_{i}": v for k, v in base.items()})
    matcher = matcher_module.HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0)
    criterion = model_module.SetCriterion(args.num_classes, matcher, weight_dict,
                                          ["labels", "boxes", "cardinality"], focal_alpha=0.25)
    return model, criterion, misc


def _outputs(out: dict) -> dict:
    return {"pred_logits": out["pred_logits"].detach(), "pred_boxes": out["pred_boxes"].detach(),
            "aux_outputs": [{k: v.detach() for k, v in a.items()} for a in out["aux_outputs"]]}


def run_case(root: Path, denoising: bool) -> dict:
    """DN-DAB-Deformable-DETR (DN-DETR's code) or DAB-Deformable-DETR (DAB-DETR's code)."""
    package = "dn_dab_deformable_detr" if denoising else "dab_deformable_detr"
    model, criterion, misc = build(root, package)
    images, targets = inputs()
    samples = misc.nested_tensor_from_tensor_list(images)
    model.eval()
    with torch.no_grad():
        eval_out = model(samples, dn_args=0)[0] if denoising else model(samples)
    model.train()
    criterion.train()
    torch.manual_seed(DN_SEED)
    case = {}
    if denoising:
        dn_args = (targets, ARGS["scalar"], ARGS["label_noise_scale"], ARGS["box_noise_scale"], 0)
        train_out, mask_dict = model(samples, dn_args=dn_args)
        losses = criterion(train_out, targets, mask_dict)
        known_logits, known_boxes = mask_dict["output_known_lbs_bboxes"]
        case["train_denoising"] = {"logits": known_logits.detach(), "boxes": known_boxes.detach(),
                                   "pad_size": mask_dict["pad_size"]}
    else:
        train_out = model(samples)
        losses = criterion(train_out, targets)
    total = sum(losses[k] * criterion.weight_dict[k] for k in losses if k in criterion.weight_dict)
    total.backward()
    grads = {k: p.grad.detach() for k, p in model.named_parameters() if p.grad is not None}
    kept = {}
    for name, grad in grads.items():
        index = sampled_entries(grad.numel())
        kept[name] = (grad.flatten() if index is None else grad.flatten()[index]).half()
    case.update({
        "shapes": {k: tuple(v.shape) for k, v in model.state_dict().items()},
        "eval_outputs": _outputs(eval_out),
        "train_outputs": _outputs(train_out),
        "losses": {k: torch.as_tensor(v).detach().float() for k, v in losses.items()},
        "weight_dict": criterion.weight_dict, "total": total.detach(),
        "grads": kept,  # float16, flat, `sampled_entries` of large tensors
        "grad_norms": {k: g.norm() for k, g in grads.items()},
    })
    print(f"{package}: total loss {total.item():.4f}")
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dn-detr", type=Path, required=True)
    parser.add_argument("--dab-detr", type=Path, required=True)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "fixtures" / "dn_dab_deformable_reference.pt")
    args = parser.parse_args()
    stub_reference_imports({**DEFORM_ATTN_EXTENSION, **TIMM}, cuda_on_cpu=True)
    fixture = {"args": ARGS, "dn_seed": DN_SEED,  # images and targets: `inputs()`
               "dn_dab": run_case(args.dn_detr, denoising=True),
               "dab": run_case(args.dab_detr, denoising=False)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
