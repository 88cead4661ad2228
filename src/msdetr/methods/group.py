"""Group DETR: G - 1 extra copies of the primary queries (`model.group`, provider
`modeling.group_queries`), each matched one-to-one (`supervision.group`)."""

from __future__ import annotations

from msdetr.methods.contracts import GROUP, ONE_TO_ONE
from msdetr.methods.unit import MethodUnit, StreamSpec, SupervisionTools
from msdetr.modeling.group_queries import GroupQueries
from msdetr.supervision.compose import ComposedSupervision, Rescaled
from msdetr.supervision.group import GroupSupervision, group_normalizer


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


UNIT = MethodUnit("group", streams=(StreamSpec(GROUP),), provider=provider, primary=primary)
