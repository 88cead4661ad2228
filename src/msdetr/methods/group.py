"""Group DETR: G - 1 extra copies of the primary queries (`model.group`, provider
`modeling.group_queries`), each matched one-to-one (`supervision.group`)."""

from __future__ import annotations

from msdetr.methods.contracts import GROUP
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.group_queries import GroupQueries
from msdetr.supervision.group import GroupSupervision


def provider(cfg):
    if cfg.group.num_groups <= 1:
        return None
    return GroupQueries(cfg.group.num_groups, cfg.num_queries, cfg.hidden_dim, cfg.two_stage)


def primary(tools: SupervisionTools, current):
    group = tools.config.group
    if not group.enabled:
        return None
    return GroupSupervision(current, tools.hungarian, normalize_over_groups=group.normalize_over_groups)


UNIT = MethodUnit("group", streams=(StreamSpec(GROUP),), provider=provider, primary=primary)
