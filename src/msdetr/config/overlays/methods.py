"""Training methods as config overlays: each turns a base config into the base plus one method.
The overlays live in the method units (`msdetr.methods.<unit>.OVERLAYS`); this table is made
from the registered units (`msdetr.methods.registry`).

An overlay reads the config it is applied to (the base with the overlays before it) and returns
a nested dict of the values to set (merged key by key, as a preset's `base:`). Values the
reference defines relative to the detector are scaled from the base; the others are the
reference's. An overlay that cannot apply to a base raises `MsdetrError` naming both.

Methods (spelling used in `BASE+METHOD+...`), reference presets in parentheses:

  pp       Deformable-DETR++: mixed query selection, look forward twice, dropout 0
           (ddetr_pp_r50_300). Needs a two-stage base with box refinement.
  dab      DAB-Deformable-DETR: single-stage learned 4-d anchor queries with box refinement
           (dab_ddetr_r50_300). Turns two-stage off; refuses a base with mixed query selection.
  mask     Mask-Deformable-DETR: mask head (mask_dim = hidden_dim), masks in the targets, point-sampled
           mask losses 5 / 5 (mask_ddetr_r50_300); points scale with the image area: 12544 at 1333
           pixels, at least 1024 (tiny_seg).
  dn       DN-DETR denoising, 5 groups, label noise 0.2, box noise 0.4 (dn_dab_ddetr_r50_300); the
           label indicator on anchor (dab) bases. Needs a two-stage or dab base.
  dino     DINO contrastive denoising (dino_r50_900): dn_number 100 per 900 primary queries (scaled,
           at least 1), label noise 0.5, box noise 0.4. Needs a two-stage or dab base.
  hybrid   H-DETR hybrid matching (hdetr_pp_r50_300): 5x the primary queries as extra one-to-many
           queries, targets repeated k = 6 times, branch weights = the one-to-one weights (lambda 1),
           encoder proposals matched as a decoder layer.
  group    Group DETR (group_ddetr_pp_r50_300): 6 groups of the primary size (the MS-DETR paper's
           Table 3 setting; Group DETR's own recipe: 11, `--set model.group.num_groups=11`), losses
           averaged over the groups, group weights = the one-to-one weights.
  dac      DAC-DETR's divide-and-conquer branch (dac_ddetr_pp_r50_300): top-K 6 / 0.4, positives at
           most 0.25 of the queries, IoU-aware BCE with prime-sample weights (tau 1.5), weights 1 / 5 / 2,
           encoder proposals matched on refined boxes with the class cost (as released). The release's
           evaluation (NMS 0.8, top 300) is the preset's, not the method's: variants compare alike.
  align    Align-DETR (align_dino_r50_900): IoU-aware BCE on the one-to-one stream, mixed matching
           k = 2 on earlier layers / 1 on the last, tau 1.5, one-to-one weights 1 / 5 / 2, detrex's
           IoU epsilon 1e-6, box noise 1.0 on a denoising base. The release's optimizer recipe (lr 1e-4,
           backbone 1e-5, no offset multiplier, stem frozen) is the preset's, not the method's.
  ms_detr  MS-DETR (msdetr_r50_300): the one-to-many stream tapped after cross-attention with the
           auxiliary FFN, top-K 6 / 0.4 (official sampler), one-to-one class weight 1, one-to-many
           2 / 5 / 2 (plus the one-to-one mask weights), encoder 2 / 5 / 2 matched on anchors. With other
           methods as in the combined presets: hybrid / group / denoising streams take the one-to-one class
           weight 1, DAC-DETR's encoder matching is kept, Align's IoU-aware loss covers the one-to-many stream.

Overlays are applied in the order of `METHOD_ORDER` whatever the order written, so
`tiny+ms_detr+hybrid` and `tiny+hybrid+ms_detr` are the same config.
"""

from __future__ import annotations

from msdetr.config.overlay import Overlay, OverlayFunction
from msdetr.methods.registry import overlays

_ORDERED: list[Overlay] = overlays()
METHODS: dict[str, tuple[OverlayFunction, str]] = {o.name: (o.apply, o.label) for o in _ORDERED}
METHOD_ORDER = tuple(METHODS)
PINS: dict[str, tuple[str, ...]] = {o.name: o.pins for o in _ORDERED}  # keys later overlays leave alone
# Pairs that cannot go together (the reason completes "methods 'a' and 'b' ...").
EXCLUSIVE = {(o.name, other): reason for o in _ORDERED for other, reason in o.excludes}
ALIASES = {alias: o.name for o in _ORDERED for alias in o.aliases}
