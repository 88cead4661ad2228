"""Make the Mr. DETR conformance fixtures `tests/fixtures/mrdetr_<config>.pt` from the released code
(not run in CI).

    python tests/make_mrdetr_fixture.py /path/to/Mr.DETR [output_dir]

The checkout is Visual-AI/Mr.DETR (the fixture records its commit when it is a git checkout);
`projects/mr_detr_deformable/modeling/*.py` and a few `detrex/` files are imported as they are.
The spec of what they do is docs/mr_detr_reference.md.

Stand-ins, inside this script only (nothing else is changed):
- detectron2 is a git submodule the snapshot does not hold. Used by the training forward are only
  `ImageList.from_tensors` (pad to the largest image, bottom/right, value 0) and the `Instances` /
  `Boxes` containers of the targets: plain stand-ins below. `detector_postprocess` (inference
  only) is never reached. The backbone config names detectron2's ResNet-50 (stride in the 3x3
  convolution, FrozenBN): the stand-in is torchvision's resnet50 with FrozenBatchNorm2d, the same
  network; it is frozen here (the released config trains res2..res5 at 0.1x the lr, freeze_at=1).
- `detrex/__init__.py` imports the data / config / backbone zoo (detectron2, timm, ...), so the
  `detrex` package is assembled from the files the model needs: layers/{multi_scale_deform_attn,
  mlp, box_ops, position_embedding, conv, shape_spec, attention}.py, utils/misc.py,
  modeling/criterion/criterion.py, modeling/matcher/matcher.py, modeling/neck/channel_mapper.py;
  `detrex._C` (the compiled CUDA op) is an empty module, so MultiScaleDeformableAttention takes
  detrex's own pure-PyTorch path (`multi_scale_deformable_attn_pytorch`, chosen for CPU tensors);
  `detrex.utils.dist` (detectron2's comm) is `get_world_size() == 1`, not distributed.
- `fairscale.nn.checkpoint.checkpoint_wrapper` is the identity (its result is discarded by the
  reference anyway, see the spec); `Tensor.cuda` is the identity (the one-to-many sampler calls
  `.cuda()` on its permutations).

Configurations (both the released Deformable-DETR++ 12-epoch recipe: two-stage, box refinement,
mixed selection, look forward twice, dropout 0, classes focal, weights 2/5/2, encoder x3; the
released 300q and 900q configs differ only in `num_queries`), small: hidden 256 (the two-stage
sine embedding hard-codes 128 features per coordinate), 8 heads, 4 points, 3 feature levels
(res3..res5, no extra 3x3 level: its 2048x256x9 convolution would dominate the fixture), FFN 32,
1 encoder layer, 7 classes:
- `300q`: 12 queries, 2 decoder layers;
- `900q`: 36 queries (3x, as 900 / 300), 3 decoder layers.
Inputs (seed 7): two uint8 images 3x64x72 and 3x56x80 (fed as float, normalized by the model
with the released pixel mean / std), 3 and 2 boxes, labels distinct within an image.

Weights are not stored: `seeded_state(shapes, seed)` below regenerates every non-backbone
parameter and buffer (float16-rounded) and `tests/support/references.seeded_backbone_state` the frozen
ResNet-50 (torchvision names, under `backbone.`); shared heads (`transformer.decoder.class_embed.*`
/ `.bbox_embed.*` are the same modules as `class_embed.*` / `bbox_embed.*`) are listed in `twins`.

Fixture keys (torch.load(path, weights_only=False)):
- reference: {repository, commit}; config: the small config (dict); inputs: {images: [3xHxW uint8],
  image_sizes, boxes_cxcywh / boxes_xyxy_abs / labels per image}; backbone_seed, seed.
- shapes / backbone_shapes: name -> shape (order = generation order); twins: [names].
- parameter_names: reference names of the trainable parameters (`named_parameters`, deduplicated:
  the shared heads appear once, as `transformer.decoder.class_embed.<i>.*` /
  `transformer.decoder.bbox_embed.<i>.*`, the twins of `class_embed.<i>.*` / `bbox_embed.<i>.*`);
  no_grad_parameters: trainable ones that got no gradient (none).
- targets: the targets as the criterion received them (normalized cxcywh, labels).
- outputs: the dict the criterion received: pred_logits / pred_boxes (final layer, (B, Q, C) /
  (B, Q, 4)), aux_outputs [L-1 x {pred_logits, pred_boxes}], group [L x {...}] (the instructive
  route "o2m"), sep [L x {...}] (the route with its own FFN weights), enc_outputs /
  enc_outputs_o2m {pred_logits (B, S, C), pred_boxes (B, S, 4), anchors (B, S, 4)}.
- decoder_calls: the three decoder passes in call order (primary, o2m, sep): inputs {query,
  query_pos, reference_points} and outputs {hidden (L, B, Q, D), references (L, B, Q, 4)}, each
  packed as (float16, scale) like the gradients (a debugging aid; compare `outputs` exactly).
- matching: hungarian [final, aux 0..L-2], topk_group [layer 0..L-1], topk_sep [layer 0..L-1],
  encoder [enc, enc_o2m]: per call a list over images of (query_idx, target_idx) int64, in the
  reference's order; topk_duplicates: per route / layer, queries given to more than one target.
- losses: unweighted terms by reference name; weight_dict; weighted: weighted terms (what the
  model returns); total: their sum (what the training loop back-propagates).
- gradients (keys as parameter_names): name -> (float16 tensor, scale), grad ~= half * scale (tests/support/references'
  unpack_gradient), for every trainable parameter with a gradient of at most 100k elements;
  gradient_sketches: the larger ones (neck projections, pos_trans, decoder self-attention
  in_proj): name -> {sketch: grad.flatten(1) @ sketch_projection(in) (out, 16) float32, norm}.
- inference: eval-mode (the reference's `inference` inputs): box_cls (B, Q, C) final-layer logits
  after the released layer-fusion of scores, box_pred (B, Q, 4); no padding mask in eval mode.

Reference parameter names (prefix -> what it is -> the msdetr piece it corresponds to; `<i>` layer):
- `backbone.*`: torchvision ResNet-50 names (conv1, bn1, layer1..4), frozen -> `backbone` body.
- `neck.convs.<i>.conv` / `.norm`: 1x1 conv + GroupNorm(32) per level -> `neck.projections.<i>`.
- `transformer.level_embeds` (levels, D) -> `encoder.level_embed`.
- `transformer.encoder.layers.<i>.attentions.0` (MSDeformAttn: sampling_offsets, attention_weights,
  value_proj, output_proj), `.norms.0`, `.ffns.0.layers.0.0` (D -> F), `.ffns.0.layers.1` (F -> D),
  `.norms.1` -> encoder layer self_attn, norm1, linear1, linear2, norm2.
- `transformer.decoder.layers.<i>.`:
  `attentions.0.attn` (nn.MultiheadAttention: in_proj_weight/bias, out_proj) -> self_attn;
  `attentions.0.norm_o2o` -> norm2 (the self-attention post-norm; primary and sep routes);
  `attentions.0.norm_o2m` (new: the instructive route's self-attention post-norm);
  `attentions.0.instruction_o2m.weight`, `attentions.0.instruction_o2m_pos.weight` (new, 10 x D);
  `attentions.1` (MSDeformAttn) -> cross_attn; `norms.0` -> norm1;
  `ffns.0.layers.0.linear.linear` / `ffns.0.layers.1.linear` -> linear1 / linear2;
  `ffns.0.layers.0.linear.linear_sep` / `ffns.0.layers.1.linear_sep` (new: the sep route's FFN);
  `norms.1` -> norm3.
- `transformer.enc_output(_norm)`, `transformer.pos_trans(_norm)`, `query_embedding` (Q x D, mixed
  selection content) -> `queries.enc_output(_norm)`, `queries.pos_trans(_norm)`, `queries.content_embed`.
- `class_embed.<i>`, `bbox_embed.<i>.layers.{0,1,2}` for i < L -> `heads.class_heads.<i>`,
  `heads.box_heads.<i>`; i = L (the last) -> `heads.encoder_class_head` / `heads.encoder_box_head`.
  `transformer.decoder.class_embed.*` / `.bbox_embed.*` are the same modules (`twins`).
- `transformer.decoder.class_embed_o2m_encoder`, `transformer.decoder.bbox_embed_enc_o2m` (new: the
  instructive route's encoder class / box heads).
Module structure: DeformableDETR(backbone, position_embedding, neck, transformer(encoder, decoder,
level_embeds, enc_output, pos_trans), class_embed[L+1], bbox_embed[L+1], criterion); the decoder is
called three times per forward (primary, o2m with `o2m=True`, sep with `sep=True`), see
docs/mr_detr_reference.md.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
import types
from pathlib import Path

import torch
from torch import Tensor, nn

SEED_BACKBONE = 1234
SKETCH_SEED, SKETCH_COLUMNS = 4321, 16
SKETCH_ABOVE = 100_000  # gradients with more elements are kept as sketches (fixture size)
NUM_CLASSES = 7
SMALL = {
    "embed_dim": 256, "num_heads": 8, "num_feature_levels": 3, "feedforward_dim": 32,
    "num_encoder_layers": 1, "num_classes": NUM_CLASSES,
}
CONFIGS = {
    "300q": {**SMALL, "num_queries": 12, "num_decoder_layers": 2, "seed": 300},
    "900q": {**SMALL, "num_queries": 36, "num_decoder_layers": 3, "seed": 900},
}


# ----------------------------------------------------------------------------- stand-ins


def _load_file(name: str, path: Path) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so that submodules resolve through sys.modules
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


class Boxes:
    def __init__(self, tensor: Tensor):
        self.tensor = tensor


class Instances:
    def __init__(self, image_size, **fields):
        self.image_size = image_size
        self.__dict__.update(fields)

    def to(self, device):
        return self


class ImageList:
    """detectron2's ImageList.from_tensors with its defaults (size_divisibility 0, pad value 0)."""

    def __init__(self, tensor: Tensor, image_sizes):
        self.tensor, self.image_sizes = tensor, image_sizes

    @staticmethod
    def from_tensors(tensors, size_divisibility: int = 0, pad_value: float = 0.0):
        sizes = [tuple(t.shape[-2:]) for t in tensors]
        h, w = max(s[0] for s in sizes), max(s[1] for s in sizes)
        batch = tensors[0].new_full((len(tensors), tensors[0].shape[0], h, w), pad_value)
        for img, pad in zip(tensors, batch):
            pad[:, : img.shape[-2], : img.shape[-1]].copy_(img)
        return ImageList(batch.contiguous(), sizes)


def _postprocess_unavailable(*args, **kwargs):
    raise RuntimeError("detector_postprocess is not part of the fixture")


def stub_and_import(root: Path):
    """Register the stand-ins, assemble `detrex`, import `projects.mr_detr_deformable.modeling`."""
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    _module("detectron2")
    _module("detectron2.modeling", detector_postprocess=_postprocess_unavailable)
    _module("detectron2.structures", Boxes=Boxes, ImageList=ImageList, Instances=Instances)
    _module("fairscale")
    _module("fairscale.nn")
    _module("fairscale.nn.checkpoint", checkpoint_wrapper=lambda module, *a, **k: module)

    d = root / "detrex"
    detrex = _module("detrex")
    detrex._C = _module("detrex._C")
    layers = _module("detrex.layers")
    utils = _module("detrex.utils")
    modeling = _module("detrex.modeling")
    _module("detrex.modeling.criterion")
    _module("detrex.modeling.neck")
    matcher_pkg = _module("detrex.modeling.matcher")
    detrex.layers, detrex.utils, detrex.modeling = layers, utils, modeling
    for file in ("box_ops", "multi_scale_deform_attn", "mlp", "position_embedding", "conv", "shape_spec",
                 "attention"):
        module = _load_file(f"detrex.layers.{file}", d / "layers" / f"{file}.py")
        setattr(layers, file, module)
        layers.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("_")})
    misc = _load_file("detrex.utils.misc", d / "utils" / "misc.py")
    utils.inverse_sigmoid = misc.inverse_sigmoid
    utils.get_world_size = lambda: 1
    utils.is_dist_avail_and_initialized = lambda: False
    criterion = _load_file("detrex.modeling.criterion.criterion", d / "modeling" / "criterion" / "criterion.py")
    modeling.SetCriterion = criterion.SetCriterion
    matcher = _load_file("detrex.modeling.matcher.matcher", d / "modeling" / "matcher" / "matcher.py")
    matcher_pkg.HungarianMatcher = matcher.HungarianMatcher
    neck = _load_file("detrex.modeling.neck.channel_mapper", d / "modeling" / "neck" / "channel_mapper.py")
    sys.path.insert(0, str(root))
    import projects.mr_detr_deformable.modeling as reference

    return reference, layers, matcher.HungarianMatcher, neck.ChannelMapper


class ResNet50Features(nn.Module):
    """detectron2 ResNet-50 (stride_in_1x1=False, FrozenBN, out res3..res5) as torchvision's network."""

    def __init__(self):
        super().__init__()
        import torchvision

        net = torchvision.models.resnet50(weights=None, norm_layer=torchvision.ops.FrozenBatchNorm2d)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4

    def forward(self, x: Tensor) -> dict[str, Tensor]:
        x = self.layer1(self.maxpool(self.relu(self.bn1(self.conv1(x)))))
        res3 = self.layer2(x)
        res4 = self.layer3(res3)
        return {"res3": res3, "res4": res4, "res5": self.layer4(res4)}


# ----------------------------------------------------------------------------- model


def build(reference, layers, hungarian, channel_mapper, cfg: dict):
    """configs/models/deformable_detr_r50.py + deformable_detr_r50_two_stage_12ep_plusplus(_300q).py,
    with the small sizes of `cfg`."""
    from detrex.layers import ShapeSpec

    L = cfg["num_decoder_layers"]
    transformer = reference.DeformableDetrTransformer(
        encoder=reference.DeformableDetrTransformerEncoder(
            embed_dim=cfg["embed_dim"], num_heads=cfg["num_heads"], feedforward_dim=cfg["feedforward_dim"],
            attn_dropout=0.0, ffn_dropout=0.0, num_layers=cfg["num_encoder_layers"], post_norm=False,
            num_feature_levels=cfg["num_feature_levels"]),
        decoder=reference.DeformableDetrTransformerDecoder(
            embed_dim=cfg["embed_dim"], num_heads=cfg["num_heads"], feedforward_dim=cfg["feedforward_dim"],
            attn_dropout=0.0, ffn_dropout=0.0, num_layers=L, return_intermediate=True,
            num_feature_levels=cfg["num_feature_levels"], look_forward_twice=True),
        as_two_stage=True, num_feature_levels=cfg["num_feature_levels"],
        two_stage_num_proposals=cfg["num_queries"], mixed_selection=True,
    )
    base = {"loss_class": 2.0, "loss_bbox": 5.0, "loss_giou": 2.0}
    enc = {k: v * 3 for k, v in base.items()}
    weight_dict = dict(base)
    for i in range(L - 1):
        weight_dict.update({k + f"_{i}": v for k, v in base.items()})
    weight_dict.update({k + "_enc": v for k, v in enc.items()})
    weight_dict.update({k + "_enc_o2m": v for k, v in enc.items()})
    weight_dict.update({k + "_enc_sep": v for k, v in enc.items()})
    for i in range(6):
        weight_dict.update({k + f"_group_{i}": v for k, v in base.items()})
    for i in range(6):
        weight_dict.update({k + f"_sep_{i}": v for k, v in base.items()})
    criterion = reference.DeformableCriterion(
        num_classes=cfg["num_classes"],
        matcher=hungarian(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0, cost_class_type="focal_loss_cost",
                          alpha=0.25, gamma=2.0),
        enc_matcher=hungarian(cost_class=0.0, cost_bbox=5.0, cost_giou=2.0, cost_class_type="focal_loss_cost",
                              alpha=0.25, gamma=2.0),
        weight_dict=weight_dict, loss_class_type="focal_loss", alpha=0.25, gamma=2.0,
    )
    in_features = ["res3", "res4", "res5"]
    model = reference.DeformableDETR(
        backbone=ResNet50Features(),
        position_embedding=layers.PositionEmbeddingSine(num_pos_feats=128, temperature=10000, normalize=True,
                                                        offset=-0.5),
        neck=channel_mapper(
            input_shapes={"res3": ShapeSpec(channels=512), "res4": ShapeSpec(channels=1024),
                          "res5": ShapeSpec(channels=2048)},
            in_features=in_features, out_channels=cfg["embed_dim"], num_outs=cfg["num_feature_levels"],
            kernel_size=1, norm_layer=nn.GroupNorm(num_groups=32, num_channels=cfg["embed_dim"])),
        transformer=transformer, embed_dim=cfg["embed_dim"], num_classes=cfg["num_classes"],
        num_queries=cfg["num_queries"], criterion=criterion,
        pixel_mean=[123.675, 116.280, 103.530], pixel_std=[58.395, 57.120, 57.375],
        aux_loss=True, with_box_refine=True, as_two_stage=True, select_box_nums_for_evaluation=cfg["num_queries"],
        device="cpu", mixed_selection=True,
    )
    return model


# ----------------------------------------------------------------------------- weights


def seeded_state(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, Tensor]:
    """Float16-rounded (returned as float32) values for the non-backbone parameters / buffers of the
    reference model (reference names, generated in the given order from one CPU generator):
    query / level / instruction embeddings N(0, 1); other matrices N(0, 1 / fan_in); sampling-offset
    biases U(-2, 2) (off the pixel lattice); decoder-layer class-head biases (`class_embed.<i>` but the
    last, the encoder's) 3 + 0.1 N: probabilities near 0.95, so that the top-K score 0.3 p + 0.7 IoU
    passes its 0.4 threshold from IoU 0.17 and targets get several queries; other 1-D weights
    (LayerNorm, GroupNorm) 1 + 0.1 N; other biases 0.1 N, plus 1.5 on the size outputs of the two
    encoder box heads (`bbox_embed.<last>` and `transformer.decoder.bbox_embed_enc_o2m`: proposals
    about 4x larger than the 0.05 * 2**level anchors, so that neighbouring queries overlap)."""
    g = torch.Generator().manual_seed(seed)
    encoder_head = max(int(k.split(".")[1]) for k in shapes if k.startswith("class_embed."))
    out = {}
    for name, shape in shapes.items():
        if name.startswith("class_embed.") and name.endswith(".bias") and int(name.split(".")[1]) < encoder_head:
            value = 3.0 + 0.1 * torch.randn(shape, generator=g)
        elif name.endswith(("query_embedding.weight", "level_embeds", "instruction_o2m.weight",
                          "instruction_o2m_pos.weight")):
            value = torch.randn(shape, generator=g)
        elif "bbox_embed" in name and name.endswith("layers.2.weight"):  # small refinements: boxes
            value = 0.1 * torch.randn(shape, generator=g) / math.sqrt(shape[1])  # stay near proposals
        elif len(shape) >= 2:
            value = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
        elif name.endswith("sampling_offsets.bias"):
            value = 4 * torch.rand(shape, generator=g) - 2
        elif name.endswith(".weight"):
            value = 1 + 0.1 * torch.randn(shape, generator=g)
        else:
            value = 0.1 * torch.randn(shape, generator=g)
        if name in (f"bbox_embed.{encoder_head}.layers.2.bias", "transformer.decoder.bbox_embed_enc_o2m.layers.2.bias"):
            value[2:] += 1.5  # encoder heads: proposals ~4x larger, so that neighbouring queries overlap
        out[name] = value.half().float()
    return out


def fixture_state_dict(entry: dict, backbone_seed: int) -> dict[str, Tensor]:
    """The reference-format state dict a fixture config was run with (twins included): the
    shared fixture recipe with this generator's seeded transformer weights."""
    from support import references

    return references.fixture_state_dict(entry, backbone_seed, detector_state=seeded_state)


def prepare_weights(model: nn.Module, seed: int) -> dict:
    state = model.state_dict()
    twins = [k for k in state if k.startswith(("transformer.decoder.class_embed.", "transformer.decoder.bbox_embed."))]
    entry = {
        "seed": seed,
        "shapes": {k: tuple(v.shape) for k, v in state.items() if not k.startswith("backbone.") and k not in twins},
        "backbone_shapes": {k: tuple(v.shape) for k, v in state.items() if k.startswith("backbone.")},
        "twins": twins,
    }
    model.load_state_dict(fixture_state_dict(entry, SEED_BACKBONE), strict=True)
    for p in model.backbone.parameters():
        p.requires_grad_(False)
    return entry


# ----------------------------------------------------------------------------- inputs / recording


def make_inputs() -> dict:
    g = torch.Generator().manual_seed(7)
    images = [torch.randint(0, 256, (3, 64, 72), generator=g, dtype=torch.uint8),
              torch.randint(0, 256, (3, 56, 80), generator=g, dtype=torch.uint8)]
    boxes, boxes_abs, labels = [], [], []
    for img, n in zip(images, (3, 2)):
        h, w = img.shape[-2:]
        cxcy = 0.25 + 0.5 * torch.rand(n, 2, generator=g)
        wh = 0.1 + 0.3 * torch.rand(n, 2, generator=g)
        box = torch.cat([cxcy, wh], 1)
        xyxy = torch.cat([cxcy - wh / 2, cxcy + wh / 2], 1) * torch.tensor([w, h, w, h], dtype=torch.float32)
        boxes.append(box)
        boxes_abs.append(xyxy)
        labels.append(torch.randperm(NUM_CLASSES, generator=g)[:n])
    return {"images": images, "image_sizes": [tuple(i.shape[-2:]) for i in images], "boxes_cxcywh": boxes,
            "boxes_xyxy_abs": boxes_abs, "labels": labels}


def _pick_boxes(boxes: Tensor, count: int, taken: list[Tensor]) -> list[Tensor]:
    """`count` boxes (xyxy) between two overlapping query boxes of one route (Q, 4 cxcywh): for the
    most-overlapping pairs (IoU > 0.08), the box with the mean centre and the geometric-mean size,
    so that both queries (and the assigner's top-K) reach it; little overlap with `taken`."""
    from torchvision.ops import box_iou

    xyxy = torch.cat([boxes[:, :2] - boxes[:, 2:] / 2, boxes[:, :2] + boxes[:, 2:] / 2], 1)
    inside = (xyxy[:, :2] > 0.02).all(1) & (xyxy[:, 2:] < 0.98).all(1) & (boxes[:, 2:] > 0.03).all(1)
    iou = box_iou(xyxy, xyxy).triu(1) * (inside[:, None] & inside[None, :])
    candidates = []
    for flat in torch.argsort(iou.flatten(), descending=True).tolist():
        i, j = divmod(flat, len(boxes))
        if iou[i, j] < 0.08:
            break
        centre = (boxes[i, :2] + boxes[j, :2]) / 2
        size = (boxes[i, 2:] * boxes[j, 2:]).sqrt()
        candidates.append(torch.cat([centre - size / 2, centre + size / 2]))
    candidates += [xyxy[q] for q in torch.argsort(boxes[:, 2:].prod(1), descending=True).tolist() if inside[q]]
    picked = []
    for limit in (0.1, 0.5, 0.9):  # overlap allowed between targets, relaxed when there are too few
        for box in candidates:
            if len(picked) < count and all(box_iou(box[None], t[None]).item() < limit for t in taken + picked):
                picked.append(box)
    return picked


def choose_targets(model: nn.Module, inputs: dict) -> dict:
    """Targets on the queries of a first (no-grad, training-mode) pass: per image, boxes between
    overlapping layer-0 predictions of the instructive route and of the primary (rounded to 1/512
    of the image), so that the top-K assigner gives targets several queries."""
    seen = []
    forward = model.criterion.forward
    model.criterion.forward = lambda outputs, targets: seen.append(plain(outputs)) or {}
    model.train()
    with torch.no_grad():
        model(batched_inputs(inputs))
    model.criterion.forward = forward
    out = dict(inputs)
    out["boxes_cxcywh"], out["boxes_xyxy_abs"] = [], []
    for b, (img, labels) in enumerate(zip(inputs["images"], inputs["labels"])):
        h, w = img.shape[-2:]
        n = len(labels)
        picked = _pick_boxes(seen[0]["group"][0]["pred_boxes"][b], n - 1, [])
        picked += _pick_boxes(seen[0]["aux_outputs"][0]["pred_boxes"][b] if "aux_outputs" in seen[0]
                              else seen[0]["pred_boxes"][b], n - len(picked), picked)
        xyxy = (torch.stack(picked) * 512).round() / 512
        out["boxes_cxcywh"].append(torch.cat([(xyxy[:, :2] + xyxy[:, 2:]) / 2, xyxy[:, 2:] - xyxy[:, :2]], 1))
        out["boxes_xyxy_abs"].append(xyxy * torch.tensor([w, h, w, h], dtype=torch.float32))
    return out


def batched_inputs(inputs: dict) -> list[dict]:
    return [{"image": img.float(), "instances": Instances(tuple(img.shape[-2:]), gt_boxes=Boxes(xyxy.clone()),
                                                          gt_classes=lab.clone())}
            for img, xyxy, lab in zip(inputs["images"], inputs["boxes_xyxy_abs"], inputs["labels"])]


def plain(x):
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(plain(v) for v in x)
    return x.detach().clone() if isinstance(x, Tensor) else x


def _record_calls(obj, attr: str, store: list, keep=lambda args, kwargs, result: result):
    original = getattr(obj, attr)

    def recording(*args, **kwargs):
        result = original(*args, **kwargs)
        store.append(plain(keep(args, kwargs, result)))
        return result

    setattr(obj, attr, recording)


def duplicates(indices) -> list[int]:
    """Per image, the number of queries given to more than one target."""
    return [int((torch.bincount(src) > 1).sum()) if len(src) else 0 for src, _ in indices]


def pack_gradient(grad: Tensor) -> tuple[Tensor, float]:
    """(float16 tensor, scale) with grad ~= half * scale (as tests/support/references.pack_gradient)."""
    scale = float(grad.abs().max()) or 1.0
    return (grad / scale).half(), scale


def sketch_projection(in_features: int, seed: int = SKETCH_SEED) -> Tensor:
    """(in_features, SKETCH_COLUMNS) float32 random signs (+-1), from one CPU generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2, (in_features, SKETCH_COLUMNS), generator=g).float() * 2 - 1


def sketch_gradient(grad: Tensor) -> dict:
    """A large gradient kept as its product with fixed random signs: grad.flatten(1) @ P
    ((out, SKETCH_COLUMNS) float32), with P = sketch_projection(grad.flatten(1).shape[1]), and its norm."""
    flat = grad.flatten(1).double()
    return {"sketch": (flat @ sketch_projection(flat.shape[1]).double()).float(), "norm": float(flat.norm())}


def commit_of(path: Path) -> str:
    for args in (["git", "-C", str(path), "rev-parse", "HEAD"],):
        try:
            return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            pass
    return "unknown"


def run_config(modules, name: str, cfg: dict, inputs: dict) -> dict:
    reference, layers, hungarian, channel_mapper = modules
    torch.manual_seed(0)
    model = build(reference, layers, hungarian, channel_mapper, cfg)
    weights = prepare_weights(model, cfg["seed"])
    criterion = model.criterion
    L = cfg["num_decoder_layers"]
    inputs = choose_targets(model, inputs)

    received, raw_losses = [], []
    forward = criterion.forward

    def criterion_forward(outputs, targets):
        received.append(plain({"outputs": outputs, "targets": targets}))
        losses = forward(outputs, targets)
        raw_losses.append(plain(losses))
        return losses

    criterion.forward = criterion_forward
    hungarian_calls, topk_calls, encoder_calls, decoder_calls = [], [], [], []
    _record_calls(criterion.matcher, "forward", hungarian_calls)
    _record_calls(criterion.topk_matcher, "forward", topk_calls)
    _record_calls(criterion.enc_matcher, "forward", encoder_calls)
    _record_calls(model.transformer.decoder, "forward", decoder_calls, keep=lambda a, k, r: {
        "inputs": {"query": k["query"], "query_pos": k["query_pos"], "reference_points": k["reference_points"]},
        "outputs": {"hidden": r[0], "references": r[1]}})

    model.train()
    weighted = model(batched_inputs(inputs))
    total = sum(weighted.values())
    total.backward()
    named = list(model.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    gradients = {n: pack_gradient(p.grad) for n, p in trainable
                 if p.grad is not None and p.grad.numel() <= SKETCH_ABOVE}
    sketches = {n: sketch_gradient(p.grad) for n, p in trainable
                if p.grad is not None and p.grad.numel() > SKETCH_ABOVE}
    matching = {
        "hungarian": hungarian_calls,
        "topk_group": topk_calls[:L],
        "topk_sep": topk_calls[L:],
        "encoder": encoder_calls,
        "topk_duplicates": {"group": [duplicates(c) for c in topk_calls[:L]],
                            "sep": [duplicates(c) for c in topk_calls[L:]]},
    }
    assert len(hungarian_calls) == L and len(topk_calls) == 2 * L and len(encoder_calls) == 2, "unexpected calls"

    # eval mode: what the reference's `inference` receives (after its layer fusion of scores)
    seen = []
    model.inference = lambda box_cls, box_pred, image_sizes: seen.append(plain((box_cls, box_pred))) or []
    model.eval()
    with torch.no_grad():
        model(batched_inputs(inputs))
    return {
        "inputs": inputs,
        "config": cfg,
        **weights,
        "parameter_names": [n for n, _ in trainable],
        "no_grad_parameters": [n for n, p in trainable if p.grad is None],
        "targets": received[0]["targets"],
        "outputs": received[0]["outputs"],
        "decoder_calls": [{part: {k: pack_gradient(v) for k, v in call[part].items()} for part in call}
                          for call in decoder_calls[:3]],
        "matching": matching,
        "losses": raw_losses[0],
        "weight_dict": dict(criterion.weight_dict),
        "weighted": plain(weighted),
        "total": total.detach().clone(),
        "gradients": gradients,
        "gradient_sketches": sketches,
        "inference": {"box_cls": seen[0][0], "box_pred": seen[0][1]},
    }


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    root = Path(argv[0]).resolve()
    out_dir = Path(argv[1]) if len(argv) > 1 else Path(__file__).resolve().parent / "fixtures"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    torch.set_default_dtype(torch.float32)
    modules = stub_and_import(root)
    inputs = make_inputs()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, cfg in CONFIGS.items():
        result = run_config(modules, name, cfg, inputs)
        fixture = {"reference": {"repository": "Visual-AI/Mr.DETR", "commit": commit_of(root)},
                   "backbone_seed": SEED_BACKBONE, **result}
        path = out_dir / f"mrdetr_{name}.pt"
        torch.save(fixture, path)
        dup = result["matching"]["topk_duplicates"]
        print(name, f"total {float(result['total']):.6f}", f"{len(result['gradients'])} gradients,",
              f"no grad: {result['no_grad_parameters']}", f"top-K duplicates {dup}",
              f"{path} {path.stat().st_size / 2**20:.2f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
