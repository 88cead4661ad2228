"""Config checks of Mr. DETR (when the config loads: the unit's `checks`): the `model.mr_detr` and
`supervision.mr_detr` ranges and combinations, the model / supervision pair, loss weights of the
routes' streams and classification losses chosen for them without the routes."""

from __future__ import annotations

from msdetr.config.problem import Problem, out_of_range, together
from msdetr.methods.mr_detr.config import model_problems, supervision_problems
from msdetr.methods.mr_detr.streams import ENCODER_O2M, INSTRUCTIVE, SEP, STREAMS


def problems(cfg) -> list[Problem]:  # cfg: msdetr.config.schema.Config
    m, s = cfg.model, cfg.supervision
    found = [out_of_range(f"model.{key}", value, expected)
             for key, value, expected in model_problems(m.mr_detr, m.two_stage, m.mixed_selection)]
    found += [out_of_range(f"supervision.{key}", value, expected)
              for key, value, expected in supervision_problems(s.mr_detr)]
    found += together("model.mr_detr.enabled", m.mr_detr.enabled, "supervision.mr_detr.enabled", s.mr_detr.enabled,
                      "Mr. DETR's routes (model) and their supervision are enabled together (set both or neither)")
    if m.mr_detr.enabled and s.mr_detr.enabled:
        streams = {INSTRUCTIVE: m.mr_detr.instructive_route, SEP: m.mr_detr.sep_route,
                   ENCODER_O2M: m.mr_detr.instructive_route and m.two_stage}
        weights = s.loss_weights.as_dict()
        for stream, on in streams.items():
            w = weights[stream]
            if on and w.cls == 0 and w.bbox == 0 and w.giou == 0:
                found.append(Problem(
                    (f"supervision.loss_weights.{stream}", "model.mr_detr"),
                    f"supervision.loss_weights.{stream} are all 0 but model.mr_detr turns the `{stream}` stream "
                    "on: it would cost training time and learn nothing; give it loss weights or turn the route off"))
    for stream in STREAMS:
        loss = getattr(s.classification_loss, stream)
        if loss != "focal" and not m.mr_detr.enabled:
            found.append(Problem(
                (f"supervision.classification_loss.{stream}",),
                f"supervision.classification_loss.{stream} is {loss!r} but the model has no `{stream}` stream, "
                "so it would do nothing; it needs model.mr_detr.enabled and supervision.mr_detr.enabled, "
                "or drop the setting"))
    return found
