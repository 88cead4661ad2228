"""Generate the H-DETR conformance fixture from the reference code (not run by CI).

    python tests/make_hdetr_fixture.py /path/to/H-Deformable-DETR [tests/fixtures/hdetr_fixture.pt]

The reference checkout (HDETR/H-Deformable-DETR) is imported as is; inside this script only:
the compiled deformable-attention extension is replaced by the reference's own pure-PyTorch
`ms_deform_attn_core_pytorch`; `wandb` (imported by its engine) and its Swin backbone module
(timm, mmcv) by empty modules;
torchvision's ResNet-50 is built without downloading weights, and the torchvision version
check of its util/misc.py sees a version it understands. The model runs in training mode
(dropout 0) on the CPU; its loss is the reference's own `train_hybrid` (engine.py).

Weights are not stored: every parameter comes from `support.references.seeded_detector_state`
(sampling-offset biases off the pixel lattice) and the frozen ResNet-50 (lr_backbone 0) from
`seeded_backbone_state`, float16-rounded; the fixture keeps the seeds and shapes. The
reference hard-codes hidden size 256 for two-stage (128 sine features per coordinate) and the
ResNet-50 channel counts, so the model cannot be made smaller than this.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from support.reference_stubs import DEFORM_ATTN_EXTENSION, pytorch_sampling_function, stub_reference_imports

SEED_BACKBONE = 1234
SMALL = [
    "--with_box_refine", "--two_stage", "--dim_feedforward", "32", "--enc_layers", "1", "--dec_layers", "2",
    "--num_feature_levels", "3", "--enc_n_points", "2", "--dec_n_points", "2", "--nheads", "4",
    "--lr_backbone", "0", "--num_queries_one2one", "10", "--num_queries_one2many", "30",
]
CONFIGS = {
    # the pp recipe (mixed selection, look forward twice, dropout 0), k 2, lambda 1
    "hdetr_pp": SMALL + ["--k_one2many", "2", "--lambda_one2many", "1.0", "--dropout", "0.0",
                         "--mixed_selection", "--look_forward_twice"],
    # plain two-stage (content queries from the proposals), k 3, lambda 0.5
    "hdetr_twostage": SMALL + ["--k_one2many", "3", "--lambda_one2many", "0.5", "--dropout", "0.0"],
}


WITH_GRADIENTS = {"hdetr_pp"}  # gradients of every parameter (float16 + scale); ~5 MiB per config


def import_reference(root: Path):
    sys.path.insert(0, str(root))
    # wandb: imported by its engine; Swin backbones (timm, mmcv): not used
    stub_reference_imports({**DEFORM_ATTN_EXTENSION, "wandb": {}, "models.swin_transformer": {"SwinTransformer": None}})
    import torchvision

    real_version = torchvision.__version__
    torchvision.__version__ = "0.99"  # util/misc.py parses float(version[:3])
    resnet50 = torchvision.models.resnet50
    torchvision.models.resnet50 = lambda pretrained=False, **kw: resnet50(weights=None, **kw)
    import models.ops.modules.ms_deform_attn as msda
    from models.ops.functions.ms_deform_attn_func import ms_deform_attn_core_pytorch

    msda.MSDeformAttnFunction = pytorch_sampling_function(ms_deform_attn_core_pytorch)
    import engine
    from main import get_args_parser
    from models import build_model

    torchvision.__version__ = real_version
    return get_args_parser, build_model, engine.train_hybrid


def make_inputs():
    g = torch.Generator().manual_seed(7)
    images = [torch.randn(3, 96, 112, generator=g), torch.randn(3, 80, 128, generator=g)]
    targets = []
    for n in (3, 2):
        cxcy = 0.25 + 0.5 * torch.rand(n, 2, generator=g)
        wh = 0.1 + 0.3 * torch.rand(n, 2, generator=g)
        labels = torch.randint(1, 91, (n,), generator=g)
        targets.append({"boxes": torch.cat([cxcy, wh], 1), "labels": labels})
    return images, targets


def prepare_weights(model, seed: int) -> dict:
    """Load the seeded fixture weights into `model`; return what the fixture stores to regenerate them."""
    from support.references import fixture_state_dict

    state = model.state_dict()
    twins = [k for k in state if k.startswith(("transformer.decoder.class_embed.", "transformer.decoder.bbox_embed."))]
    entry = {
        "seed": seed,
        "shapes": {k: tuple(v.shape) for k, v in state.items()
                   if not k.startswith("backbone.0.") and k not in twins},
        "backbone_shapes": {k: tuple(v.shape) for k, v in state.items() if k.startswith("backbone.0.")},
        "twins": twins,
    }
    model.load_state_dict(fixture_state_dict(entry, SEED_BACKBONE), strict=True)
    return entry


def plain(outputs):
    if isinstance(outputs, dict):
        return {k: plain(v) for k, v in outputs.items()}
    if isinstance(outputs, list):
        return [plain(v) for v in outputs]
    return outputs.detach().clone() if isinstance(outputs, torch.Tensor) else outputs


def main() -> None:
    root = Path(sys.argv[1])
    out_path = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).parent / "fixtures" / "hdetr_fixture.pt"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from support.references import pack_gradient

    get_args_parser, build_model, train_hybrid = import_reference(root)
    from util.misc import nested_tensor_from_tensor_list

    images, targets = make_inputs()
    fixture = {"inputs": {"images": images, "targets": targets}, "backbone_seed": SEED_BACKBONE, "configs": {}}
    for name, argv in CONFIGS.items():
        args = get_args_parser().parse_args(argv + ["--device", "cpu"])
        torch.manual_seed(0)
        model, criterion, _ = build_model(args)
        weights = prepare_weights(model, seed=100 + len(fixture["configs"]))
        model.train()
        criterion.train()
        outputs = model(nested_tensor_from_tensor_list(images))
        loss_dict = train_hybrid(
            outputs, [dict(t) for t in targets], args.k_one2many, criterion, args.lambda_one2many
        )
        weight_dict = criterion.weight_dict  # the total as the reference's train_one_epoch sums it
        total = sum(loss_dict[k] * weight_dict[k] for k in loss_dict if k in weight_dict)
        total.backward()
        grads = {n: pack_gradient(p.grad) for n, p in model.named_parameters() if p.grad is not None}
        if name not in WITH_GRADIENTS:
            grads = {}
        fixture["configs"][name] = {
            "argv": argv,
            "args": {k: v for k, v in vars(args).items() if isinstance(v, (int, float, str, bool, list, type(None)))},
            **weights,
            "outputs": plain(outputs),
            "losses": {k: v.detach().clone() if isinstance(v, torch.Tensor) else torch.tensor(v)
                       for k, v in loss_dict.items()},
            "weight_dict": dict(weight_dict),
            "total": total.detach().clone(),
            "gradients": grads,
        }
        print(name, f"total {float(total):.4f}", f"{len(grads)} gradients")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, out_path)
    print(out_path, f"{out_path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
