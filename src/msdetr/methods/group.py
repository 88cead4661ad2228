"""Group DETR: G - 1 extra copies of the primary queries (`model.group`, provider
`modeling.group_queries`), each matched one-to-one (`supervision.group`)."""

from __future__ import annotations

from typing import Any

from msdetr.config.overlay import Overlay, stream_weights
from msdetr.config.problem import Problem, together
from msdetr.config.schema import Config
from msdetr.methods.contracts import GROUP, ONE_TO_ONE
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.group_queries import GroupQueries
from msdetr.supervision.compose import ComposedSupervision, Rescaled
from msdetr.supervision.group import GroupSupervision, group_normalizer

GROUP_COUNT = 6


def provider(cfg):
    if cfg.group.num_groups <= 1:
        return None
    return GroupQueries(cfg.group.num_groups, cfg.num_queries, cfg.hidden_dim, cfg.two_stage)


def primary(tools: SupervisionTools, current):
    group = tools.config.group
    if not group.enabled:
        return None
    strategy = GroupSupervision(tools.hungarian, normalize_over_groups=group.normalize_over_groups)
    if group.normalize_over_groups:  # the primary group is one of the G averaged groups
        current = Rescaled(current, ONE_TO_ONE, group_normalizer)
    return ComposedSupervision([current, strategy])


def overlay_group(cfg: Config, where: str) -> dict[str, Any]:
    return {
        "model": {"group": {"num_groups": GROUP_COUNT}},
        "supervision": {
            "group": {"enabled": True, "normalize_over_groups": True},
            "loss_weights": {"group": stream_weights(cfg, "one_to_one")},
        },
    }


def checks(cfg: Config) -> list[Problem]:
    """The extra groups and their supervision come together."""
    return together("model.group.num_groups > 1", cfg.model.group.num_groups > 1, "supervision.group.enabled",
                    cfg.supervision.group.enabled)


OVERLAYS = (
    Overlay("group", overlay_group, "Group DETR", rank=6, aliases=("group_detr",)),
)

UNIT = MethodUnit("group", streams=(StreamSpec(GROUP),), provider=provider, primary=primary,
                  overlays=OVERLAYS, checks=checks)
