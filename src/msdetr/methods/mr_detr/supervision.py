"""Supervision of Mr. DETR's routes and second encoder head (the criterion's `mr_detr` strategy).

As released (docs/mr_detr_reference.md, sections 3-4):
- every layer of `mr_instructive`, then every layer of `mr_sep` (the random draws of the positive
  cap follow that order), top-K one-to-many on that layer's **own** (detached) logits and boxes:
  score class_weight * p + iou_weight * IoU, k, threshold, official mode, pairs listed by target,
  best score first (`supervision.dac.by_target_best_first`), positives capped at `positive_fraction` of the queries too;
- positives capped at `max_positives` an image whatever Q (the release's assigner hard-codes
  900 queries x 0.25 = 225), i.e. a fraction (max_positives + 0.5) / Q of the queries;
- route losses divided by normalizer_scale * N (1 Deformable, 3 DINO / Align; N clamped at 1 first);
  optional prime-sample weights (tau; on the class target and the GIoU term, as the Align release);
- the second encoder head's proposals (`mr_encoder`) matched like the primary's (`EncoderAssigner`:
  the Deformable release matches on the anchors without class cost, its DINO / Align variants on the
  refined proposals with the class cost);
- with denoising (DINO / Align releases): the routes' denoising streams (`mr_instructive_dn`, `mr_sep_dn`)
  like the primary's denoising stream (the same noised objects, `supervision.denoising_normalization`).

Layers: L; the tasks' streams are `mr_instructive`, `mr_sep` (per layer) and `mr_encoder`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from msdetr.methods.mr_detr.config import MrDetrSupervisionConfig
from msdetr.methods.mr_detr.streams import DENOISING_STREAMS, ENCODER_O2M, INSTRUCTIVE, SEP
from msdetr.modeling.outputs import DetectorOutput
from msdetr.supervision.base import SupervisionTask, Targets
from msdetr.supervision.dac import by_target_best_first
from msdetr.supervision.denoising import DENOISING, DenoisingSupervision
from msdetr.supervision.encoder import EncoderAssigner, EncoderSupervision
from msdetr.supervision.layers import stream_tasks
from msdetr.supervision.topk import TopKAssigner


class MrDetrSupervision:
    """Plans the routes' top-K tasks and the second encoder head's task (only for the streams the
    detector returned: the routes can be turned off one by one, and nothing is planned in eval).

    top_k: options -> top-K assigner (`methods.unit.SupervisionTools.top_k`); encoder_assigner: the
    config's encoder-proposal matcher (`SupervisionTools.encoder_assigner`)."""

    def __init__(self, cfg: MrDetrSupervisionConfig, top_k: Callable[[MrDetrSupervisionConfig], TopKAssigner],
                 encoder_assigner: EncoderAssigner, denoising_normalization: str = "groups") -> None:
        self.cfg = cfg
        self.top_k = top_k
        self.encoder = EncoderSupervision(encoder_assigner, stream=ENCODER_O2M)
        self.denoising = {stream: DenoisingSupervision(denoising_normalization, stream=stream)
                          for stream in DENOISING_STREAMS.values()}

    def assigner(self, num_queries: int) -> TopKAssigner:
        """The top-K assigner for Q queries, its positive cap `max_positives` an image (and
        `positive_fraction` of the queries)."""
        cap = (self.cfg.max_positives + 0.5) / num_queries  # int(Q * cap) == max_positives
        return self.top_k(replace(self.cfg, positive_fraction=min(self.cfg.positive_fraction, cap)))

    def plan(self, output: DetectorOutput, targets: Targets) -> list[SupervisionTask]:
        tasks = []
        for stream in (INSTRUCTIVE, SEP):
            if stream not in output.streams:
                continue
            predictions = output.streams[stream]
            assignments = self.assigner(predictions.logits.shape[2]).assign_layers(
                predictions.logits.detach(), predictions.boxes.detach(), targets, list(range(predictions.num_layers)))
            tasks += stream_tasks(output, stream, targets, [by_target_best_first(a) for a in assignments],
                                  rank_tau=self.cfg.tau if self.cfg.tau > 0 else None,
                                  normalizer_scale=self.cfg.normalizer_scale, rank_weights_l1=self.cfg.rank_weights_l1)
        for stream, strategy in self.denoising.items():
            if stream in output.streams:  # the primary's noised objects, predicted on this route
                view = replace(output, query_meta={**output.query_meta, stream: output.query_meta[DENOISING]})
                tasks += strategy.plan(view, targets)
        return tasks + self.encoder.plan(output, targets)
