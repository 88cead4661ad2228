"""Make `tests/fixtures/denoising_reference.pt` from the reference implementations (not run in CI).

    python tests/make_denoising_fixture.py --dino PATH/TO/IDEA-Research/DINO \
        --dn-detr PATH/TO/IDEA-Research/DN-DETR [--out tests/fixtures/denoising_reference.pt]

Runs on the CPU: `.cuda()` / `.to("cuda")` are redirected to the CPU and the compiled deformable
attention extension is stubbed (only the query builders, post-processing and criteria run).

What it records, for fixed targets and seeds (see `tests/test_conformance_denoising.py`):
- DINO `prepare_for_cdn` (contrastive denoising): the denoising content and reference boxes, the
  self-attention mask and `dn_meta`, for two `dn_number`s (dynamic groups and the fixed-groups corner);
  `dn_post_process` on random predictions; the `*_dn` terms of DINO's `SetCriterion` on them.
- DN-DETR `prepare_for_dn` (DN-DAB-Deformable-DETR): the same, and `compute_dn_loss` (`tgt_loss_*`).
Each builder call starts from `torch.manual_seed(seed)`, so our builder, drawing its random numbers
in the same order from a generator seeded the same, must give the same noise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import nn

from support.reference_stubs import DEFORM_ATTN_EXTENSION, TIMM, import_from, stub_reference_imports

NUM_CLASSES, HIDDEN, NUM_QUERIES, LAYERS = 7, 16, 4, 3


def targets() -> list[dict[str, torch.Tensor]]:
    """Three images: 3 objects, none, 5 objects (one touching the border, so clamping matters)."""
    g = torch.Generator().manual_seed(11)
    out = []
    for n in (3, 0, 5):
        centre = torch.rand(n, 2, generator=g) * 0.6 + 0.2
        size = torch.rand(n, 2, generator=g) * 0.3 + 0.05
        out.append({"boxes": torch.cat([centre, size], 1), "labels": torch.randint(0, NUM_CLASSES, (n,), generator=g)})
    out[2]["boxes"][0] = torch.tensor([0.05, 0.95, 0.1, 0.1])
    return out


def _random_predictions(size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    batch = len(targets())
    logits = torch.randn(LAYERS, batch, size, NUM_CLASSES, generator=g)
    boxes = torch.cat([torch.rand(LAYERS, batch, size, 2, generator=g) * 0.8 + 0.1,
                       torch.rand(LAYERS, batch, size, 2, generator=g) * 0.4 + 0.05], -1)
    return logits, boxes


def dino_cases(root: Path) -> list[dict]:
    dn_components, dino, matcher_module = import_from(
        root, ["models.dino.dn_components", "models.dino.dino", "models.dino.matcher"])
    cases = []
    for dn_number, seed in ((100, 1), (3, 2)):
        torch.manual_seed(100 + seed)
        label_enc = nn.Embedding(NUM_CLASSES + 1, HIDDEN)
        torch.manual_seed(seed)
        label, bbox, attn_mask, dn_meta = dn_components.prepare_for_cdn(
            dn_args=(targets(), dn_number, 0.5, 0.4), training=True, num_queries=NUM_QUERIES,
            num_classes=NUM_CLASSES, hidden_dim=HIDDEN, label_enc=label_enc)
        pad = dn_meta["pad_size"]
        logits, boxes = _random_predictions(pad + NUM_QUERIES, 50 + seed)
        meta = dict(dn_meta)

        def aux(classes, coords):
            return [{"pred_logits": a, "pred_boxes": b} for a, b in zip(classes[:-1], coords[:-1])]

        main_logits, main_boxes = dn_components.dn_post_process(logits, boxes, meta, True, aux)
        matcher = matcher_module.HungarianMatcher(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, focal_alpha=0.25)
        criterion = dino.SetCriterion(NUM_CLASSES, matcher, weight_dict={}, focal_alpha=0.25,
                                      losses=["labels", "boxes", "cardinality"]).train()
        outputs = {"pred_logits": main_logits[-1], "pred_boxes": main_boxes[-1],
                   "aux_outputs": aux(main_logits, main_boxes), "dn_meta": meta}
        losses = criterion(outputs, targets())
        known = meta["output_known_lbs_bboxes"]
        cases.append({
            "dn_number": dn_number, "seed": seed, "label_noise": 0.5, "box_noise": 0.4,
            "label_embed": label_enc.weight.detach().clone(),
            "query_label": label.detach(), "query_bbox": bbox.detach(), "attn_mask": attn_mask,
            "pad_size": pad, "num_dn_group": dn_meta["num_dn_group"],
            "logits": logits, "boxes": boxes,
            "split_main": (main_logits, main_boxes),
            "split_known": (torch.stack([*(a["pred_logits"] for a in known["aux_outputs"]), known["pred_logits"]]),
                            torch.stack([*(a["pred_boxes"] for a in known["aux_outputs"]), known["pred_boxes"]])),
            "losses": {k: v.detach().float() for k, v in losses.items() if "_dn" in k},
        })
    return cases


def dn_detr_cases(root: Path) -> list[dict]:
    (dn_components,) = import_from(root, ["models.dn_dab_deformable_detr.dn_components"])
    cases = []
    for scalar, seed in ((5, 3), (2, 4)):
        torch.manual_seed(100 + seed)
        label_enc = nn.Embedding(NUM_CLASSES + 1, HIDDEN - 1)
        tgt_weight = torch.randn(NUM_QUERIES, HIDDEN - 1)
        refpoints = torch.randn(NUM_QUERIES, 4)
        torch.manual_seed(seed)
        label, bbox, attn_mask, mask_dict = dn_components.prepare_for_dn(
            (targets(), scalar, 0.2, 0.4, 0), tgt_weight, refpoints, len(targets()), True, NUM_QUERIES,
            NUM_CLASSES, HIDDEN, label_enc)
        pad = mask_dict["pad_size"]
        logits, boxes = _random_predictions(pad + NUM_QUERIES, 60 + seed)
        main_logits, main_boxes = dn_components.dn_post_process(logits, boxes, mask_dict)
        losses = dn_components.compute_dn_loss(mask_dict, True, LAYERS - 1, 0.25)
        known_logits, known_boxes = mask_dict["output_known_lbs_bboxes"]
        cases.append({
            "num_groups": scalar, "seed": seed, "label_noise": 0.2, "box_noise": 0.4,
            "label_embed": label_enc.weight.detach().clone(), "tgt_weight": tgt_weight, "refpoints": refpoints,
            "query_label": label.detach(), "query_bbox": bbox.detach(), "attn_mask": attn_mask, "pad_size": pad,
            "logits": logits, "boxes": boxes, "split_main": (main_logits, main_boxes),
            "split_known": (known_logits, known_boxes),
            "losses": {k: torch.as_tensor(v).detach().float() for k, v in losses.items()},
        })
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dino", type=Path, required=True)
    parser.add_argument("--dn-detr", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "fixtures" / "denoising_reference.pt")
    args = parser.parse_args()
    stub_reference_imports({**DEFORM_ATTN_EXTENSION, **TIMM}, cuda_on_cpu=True)
    fixture = {
        "sizes": {"num_classes": NUM_CLASSES, "hidden_dim": HIDDEN, "num_queries": NUM_QUERIES, "layers": LAYERS},
        "targets": targets(),
        "cdn": dino_cases(args.dino),
        "dn": dn_detr_cases(args.dn_detr),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
