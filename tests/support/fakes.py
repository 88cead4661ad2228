"""Stand-ins for the detector's parts: random predictions and targets, a learned query group."""

from __future__ import annotations

import torch
from torch import nn

from msdetr.modeling.outputs import DetectorOutput, EncoderPredictions, StreamPredictions
from msdetr.modeling.query_groups import QueryContext, QueryGroup

NUM_CLASSES = 5  # the class count of `random_output` / `random_targets`


def random_output(num_layers=2, batch=2, num_queries=8, mixed=True, encoder=True, seed=0) -> DetectorOutput:
    """Random predictions: `one_to_one` (and `one_to_many` when mixed) streams of logits
    (L, B, Q, NUM_CLASSES) and boxes (L, B, Q, 4) (cxcywh, centres in [0.2, 0.8], sides in
    [0.1, 0.4]); with `encoder`, 20 two-stage proposals an image (logits, boxes, anchors)."""
    g = torch.Generator().manual_seed(seed)

    def boxes(*shape):
        return torch.cat(
            [0.2 + 0.6 * torch.rand(*shape, 2, generator=g), 0.1 + 0.3 * torch.rand(*shape, 2, generator=g)],
            -1,
        )

    def stream():
        return StreamPredictions(
            torch.randn(num_layers, batch, num_queries, NUM_CLASSES, generator=g),
            boxes(num_layers, batch, num_queries),
        )

    streams = {"one_to_one": stream()}
    if mixed:
        streams["one_to_many"] = stream()
    enc = None
    if encoder:
        enc = EncoderPredictions(
            torch.randn(batch, 20, NUM_CLASSES, generator=g), boxes(batch, 20), boxes(batch, 20)
        )
    return DetectorOutput(streams=streams, encoder=enc)


def random_targets(counts, seed=1) -> list[dict[str, torch.Tensor]]:
    """One target an image with `counts[i]` objects: boxes (n, 4) cxcywh as `random_output`'s,
    labels (n,) in [0, NUM_CLASSES)."""
    g = torch.Generator().manual_seed(seed)
    return [
        {
            "boxes": torch.cat(
                [0.2 + 0.6 * torch.rand(n, 2, generator=g), 0.1 + 0.3 * torch.rand(n, 2, generator=g)], 1
            ),
            "labels": torch.randint(NUM_CLASSES, (n,), generator=g),
        }
        for n in counts
    ]


class LearnedGroup(nn.Module):
    """A test provider: E learned queries with learned reference boxes."""

    def __init__(self, name: str, num_queries: int, hidden_dim: int, sees_primary: bool = False):
        super().__init__()
        self.name, self.sees_primary = name, sees_primary
        self.embed = nn.Embedding(num_queries, 2 * hidden_dim)
        self.boxes = nn.Embedding(num_queries, 4)
        self.hidden_dim = hidden_dim

    def forward(self, context: QueryContext) -> QueryGroup:
        b = context.memory.shape[0]
        pos, tgt = self.embed.weight.split(self.hidden_dim, 1)
        return QueryGroup(self.name, tgt[None].expand(b, -1, -1), pos[None].expand(b, -1, -1),
                          self.boxes.weight.sigmoid()[None].expand(b, -1, -1), sees_primary=self.sees_primary,
                          meta={"batch": b, "has_targets": context.targets is not None})
