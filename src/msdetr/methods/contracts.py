"""What a method unit, the detector and the supervision strategies share: stream names, the
extra queries a provider hands the detector and the typed meta its strategy reads back.

A *query-group provider* (an `nn.Module` owned by the detector) returns one `QueryGroup`
while training: queries appended after the primary ones, run through the same decoder under
one self-attention mask, returned as the stream named after the group. Its `meta` (one of the
typed records below, or any object of a new method) comes back in
`DetectorOutput.query_meta[name]` for the method's strategy. Nothing here imports the modeling
or supervision packages, so both may import it.

Shapes: B batch, Q primary queries, E a group's queries, D hidden size, M noised copies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any, Protocol

from torch import Tensor, nn

from msdetr.methods.streams import DAC, DENOISING, ENCODER, GROUP, HYBRID, ONE_TO_MANY, ONE_TO_ONE

__all__ = ["DAC", "DENOISING", "ENCODER", "GROUP", "HYBRID", "ONE_TO_MANY", "ONE_TO_ONE", "DenoisingMeta",
           "GroupMeta", "HybridMeta", "Meta", "NoisedTargets", "QueryContext", "QueryGroup", "QueryGroupProvider"]

if TYPE_CHECKING:  # types only: the query modules import this module
    from msdetr.modeling.queries import QueryInit


class Meta:
    """A provider's typed record for its strategy; also readable as `meta["field"]`."""

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    @classmethod
    def of(cls, value: Any):
        """`value` as this record: itself, or built from a mapping of its fields."""
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            return cls(**{f.name: value[f.name] for f in fields(cls) if f.name in value})
        raise TypeError(f"{cls.__name__}: got {type(value).__name__}")


@dataclass
class HybridMeta(Meta):
    """num_queries: E, the hybrid queries of this batch (fewer than configured on tiny images)."""

    num_queries: int


@dataclass
class GroupMeta(Meta):
    """num_groups: G - 1 extra groups; group_size: q queries each (group g at [g * q, (g + 1) * q))."""

    num_groups: int
    group_size: int


@dataclass
class NoisedTargets:
    """The noised copies of a batch's objects and where they sit (denoising).

    labels:   (M,) int64 noised labels;  boxes: (M, 4) noised normalized cxcywh boxes
    image:    (M,) image of each copy;   target: (M,) index of its object in that image
    query:    (M,) slot of the copy among the image's E denoising queries
    positive: (M,) bool, the copy reconstructs its object (False: a DINO negative)
    num_groups, copies_per_group, pad: the layout (E = num_groups * copies_per_group * pad)
    """

    labels: Tensor
    boxes: Tensor
    image: Tensor
    target: Tensor
    query: Tensor
    positive: Tensor
    num_groups: int
    copies_per_group: int
    pad: int

    @property
    def num_queries(self) -> int:
        return self.num_groups * self.copies_per_group * self.pad


@dataclass
class DenoisingMeta(Meta):
    """noised: the copies (`NoisedTargets`); method: "dn" (DN-DETR) or "cdn" (DINO)."""

    noised: NoisedTargets
    method: str


@dataclass
class QueryGroup:
    """Queries one provider adds.

    name:             the stream its predictions are returned as ("hybrid", "group", "denoising")
    tgt, query_pos:   (B, E, D) content and positional queries
    reference_points: (B, E, 4) normalized boxes, or (B, E, 2) points (same kind as the primary's)
    self_mask:        (E, E) bool, True = blocked, attention inside the group; None: all visible
    sees_primary:     the group's queries may attend to the primary queries
    meta:             what the group's strategy needs (a `Meta` record); returned in
                      `DetectorOutput.query_meta[name]`
    """

    name: str
    tgt: Tensor
    query_pos: Tensor
    reference_points: Tensor
    self_mask: Tensor | None = None
    sees_primary: bool = False
    meta: Any = field(default_factory=dict)

    @property
    def num_queries(self) -> int:
        return self.tgt.shape[1]


@dataclass
class QueryContext:
    """What a provider may build its queries from.

    primary:        the primary queries (with two-stage proposals in `primary.encoder`)
    memory:         (B, S, D) encoder output; padding_mask: (B, S) True on padding
    spatial_shapes: (H_l, W_l) per feature level
    targets:        training targets (list of dicts with normalized cxcywh `boxes`, `labels`),
                    or None when the caller gave none
    source:         the detector's primary query module (`LearnedQueries` / `TwoStageQueries`),
                    whose layers extra queries may share (e.g. single-stage reference points)

    A provider whose `num_proposals` (see `QueryGroupProvider`) is > 0 gets, with two-stage, the
    proposals ranked right after the primary top-Q in `primary.extra` (the detector asks for the
    largest; with fewer than Q + E encoder tokens, the lowest-ranked min(E, S) proposals of the
    top-min(Q + E, S), overlapping the primary's: see `TwoStageQueries.forward`). With fewer than Q
    tokens the primary itself has only S queries (`primary.tgt.shape[1]`).
    """

    primary: QueryInit
    memory: Tensor
    padding_mask: Tensor
    spatial_shapes: list[tuple[int, int]]
    targets: list[dict[str, Tensor]] | None = None
    source: nn.Module | None = None


class QueryGroupProvider(Protocol):
    """An `nn.Module` of the detector: `provider(context) -> QueryGroup` (training only).

    num_proposals (optional attribute, default 0): two-stage encoder proposals it takes after the
    primary top-Q.
    """

    def __call__(self, context: QueryContext) -> QueryGroup: ...
