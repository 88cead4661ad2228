"""Denoising query groups (DN-DETR, DINO contrastive denoising): noised ground truth as extra queries.

While training, each ground-truth object is copied into every denoising group with a noised
box (the query's reference box) and a possibly flipped label (the query's content, through a
label embedding). The decoder must reconstruct the object from its noised copy, which teaches
box refinement without waiting for matching to settle.

- DN-DETR ("dn"): `num_groups` groups of one copy per object; every copy reconstructs its object.
- DINO contrastive denoising ("cdn"): each group holds a positive copy (noise inside the box's
  half sizes) and a negative copy (noise between one and two half sizes) of every object;
  negatives must predict "no object". The group count keeps the number of denoising queries
  about fixed (`2 * dn_number // (2 * most objects in an image)`).

Layout (as the references): every copy takes `pad` slots, `pad` = the most objects of an image in
the batch; copy c of object j of image b sits at slot `c * pad + j`; an image with fewer objects
leaves its slots as padding (zero content, reference box logit 0). A group is its consecutive
copies; groups never see each other; denoising queries see the primary queries (DN-DETR, DINO),
the primary queries never see them (`modeling.query_groups`).

Random numbers are drawn in the references' order (label noise: one uniform per copy, then one
random class per flipped label; box noise: DINO one random sign then one uniform per coordinate,
DN-DETR one uniform per coordinate), so a seeded generator gives the references' noise.
Shapes: B batch, n objects of the batch, M = copies * n, E = copies * pad queries, D hidden size.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from msdetr.config.model import DenoisingConfig
from msdetr.methods.contracts import DENOISING, DenoisingMeta, NoisedTargets, QueryContext, QueryGroup
from msdetr.modeling.decoder import inverse_sigmoid

_REFERENCE_EPS = 1e-3  # the references' inverse_sigmoid epsilon for the noised boxes


def cdn_group_count(dn_number: int, most_objects: int) -> int:
    """DINO's number of contrastive groups for `dn_number` and the most objects of an image."""
    doubled = dn_number * 2
    if most_objects == 0:
        return 1
    if doubled >= 100:
        groups = doubled // (most_objects * 2)
    elif doubled < 1:
        groups = 1
    else:
        groups = doubled
    return max(groups, 1)


def noise_targets(targets: list[dict[str, Tensor]], cfg: DenoisingConfig, num_classes: int,
                  generator: torch.Generator | None = None) -> NoisedTargets:
    """Noised copies of every object of `targets` (normalized cxcywh `boxes`, `labels`)."""
    device = targets[0]["boxes"].device
    counts = [len(t["labels"]) for t in targets]
    pad = max(counts)
    contrastive = cfg.method == "cdn"
    copies_per_group = 2 if contrastive else 1
    num_groups = cdn_group_count(cfg.dn_number, pad) if contrastive else cfg.num_groups
    copies = num_groups * copies_per_group
    labels = torch.cat([t["labels"] for t in targets]).to(device, torch.int64)
    boxes = torch.cat([t["boxes"] for t in targets]).to(device, torch.float32)
    n = len(labels)
    image = torch.cat([torch.full((c,), i, dtype=torch.int64, device=device) for i, c in enumerate(counts)])
    target = torch.cat([torch.arange(c, device=device) for c in counts])
    copy = torch.arange(copies, device=device).repeat_interleave(n)
    image, target = image.repeat(copies), target.repeat(copies)
    query = copy * pad + target
    positive = copy % copies_per_group == 0
    noised_labels = labels.repeat(copies)
    known_boxes = boxes.repeat(copies, 1)
    if cfg.label_noise > 0:
        flip_probability = cfg.label_noise * 0.5 if contrastive else cfg.label_noise
        p = torch.rand(noised_labels.shape, device=device, generator=generator)
        chosen = torch.nonzero(p < flip_probability).view(-1)
        new_label = torch.randint(0, num_classes, chosen.shape, device=device, generator=generator)
        noised_labels = noised_labels.scatter(0, chosen, new_label)
    noised_boxes = known_boxes
    if cfg.box_noise > 0:
        if contrastive:
            noised_boxes = _contrastive_box_noise(known_boxes, positive, cfg.box_noise, generator)
        else:
            noised_boxes = _box_noise(known_boxes, cfg.box_noise, generator)
    return NoisedTargets(noised_labels, noised_boxes, image, target, query, positive, num_groups,
                         copies_per_group, pad)


def _box_noise(boxes: Tensor, scale: float, generator: torch.Generator | None) -> Tensor:
    """DN-DETR: centre moved by up to scale * half size, size scaled by up to 1 +- scale. (M, 4)."""
    diff = torch.cat([boxes[:, 2:] / 2, boxes[:, 2:]], 1)
    rand = torch.rand(boxes.shape, device=boxes.device, generator=generator)
    return (boxes + (rand * 2 - 1.0) * diff * scale).clamp(min=0.0, max=1.0)


def _contrastive_box_noise(boxes: Tensor, positive: Tensor, scale: float,
                           generator: torch.Generator | None) -> Tensor:
    """DINO: each corner moved by (u * half size * scale), u in [0, 1) for positives, [1, 2) for
    negatives, random sign; clamped to the image. (M, 4) cxcywh."""
    half = boxes[:, 2:] / 2
    corners = torch.cat([boxes[:, :2] - half, boxes[:, :2] + half], 1)
    diff = torch.cat([half, half], 1)
    sign = torch.randint(0, 2, boxes.shape, device=boxes.device, generator=generator,
                         dtype=torch.float32) * 2.0 - 1.0
    part = torch.rand(boxes.shape, device=boxes.device, generator=generator)
    part = (part + (~positive).float()[:, None]) * sign
    corners = (corners + part * diff * scale).clamp(min=0.0, max=1.0)
    return torch.cat([(corners[:, :2] + corners[:, 2:]) / 2, corners[:, 2:] - corners[:, :2]], 1)


def group_mask(noised: NoisedTargets, device: torch.device | None = None) -> Tensor:
    """(E, E) bool, True = blocked: a denoising group sees only itself."""
    size = noised.copies_per_group * noised.pad
    group = torch.arange(noised.num_queries, device=device) // size
    return group[:, None] != group[None, :]


class DenoisingQueries(nn.Module):
    """Query-group provider: the denoising group of a batch (training only).

    content:   label embedding of each noised label (hidden_dim wide, or hidden_dim - 1 plus an
               indicator feature 1 with `label_indicator`); padding slots hold zeros.
    reference: the noised box; padding slots sigmoid(0) = 0.5.
    position:  the primary queries' positional query of the noised box (`QueryInit.position_of`).
    meta:      `DenoisingMeta`: `noised` (a `NoisedTargets`), `method` ("dn" or "cdn").
    """

    def __init__(self, cfg: DenoisingConfig, num_classes: int, hidden_dim: int,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.hidden_dim = hidden_dim
        self.generator = generator
        self.num_proposals = 0
        width = hidden_dim - 1 if cfg.label_indicator else hidden_dim
        # num_classes + 1 rows as both references (the last row is never used by a label)
        self.label_embed = nn.Embedding(num_classes + 1, width)

    def forward(self, context: QueryContext) -> QueryGroup:
        if context.targets is None:
            raise ValueError("denoising queries need the training targets: call model(images, mask, targets=...)")
        batch = context.memory.shape[0]
        noised = noise_targets(context.targets, self.cfg, self.num_classes, self.generator)
        device, dtype = context.memory.device, context.primary.tgt.dtype
        embedded = self.label_embed(noised.labels.to(device))
        if self.cfg.label_indicator:
            embedded = torch.cat([embedded, embedded.new_ones(len(embedded), 1)], 1)
        size = noised.num_queries
        tgt = embedded.new_zeros(batch, size, self.hidden_dim)
        tgt = tgt.index_put((noised.image, noised.query), embedded)
        boxes_unact = torch.zeros(batch, size, 4, device=device)
        boxes_unact = boxes_unact.index_put((noised.image, noised.query),
                                            inverse_sigmoid(noised.boxes.to(device), _REFERENCE_EPS))
        reference = boxes_unact.sigmoid()
        query_pos = context.primary.position_of(boxes_unact) if context.primary.position_of else None
        if query_pos is None:
            query_pos = torch.zeros_like(tgt)
        return QueryGroup(DENOISING, tgt.to(dtype), query_pos.to(dtype), reference.to(dtype),
                          self_mask=group_mask(noised, device), sees_primary=True,
                          meta=DenoisingMeta(noised, self.cfg.method))
