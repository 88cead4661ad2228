"""DAC-DETR's divide-and-conquer branch: the decoder's layers once more, without self-attention.

While training, the primary queries (content, position and initial reference boxes)
go through the same decoder layers a second time with the self-attention blocks
skipped, refining their own reference boxes layer by layer, and the same
(shared) heads predict from them. The branch is returned as the `dac` stream and
supervised one-to-many (`msdetr.supervision.dac`); it has no parameters of its
own and nothing of it runs at inference.

As in the released code, the branch's first layer starts from the queries after
that layer's self-attention (`first_layer_self_attention`, the released behaviour);
later layers never self-attend. With MS-DETR's layers (cross-attention first) the
option keeps their self-attention block in the first layer.

Shapes: L layers, B batch, Q primary queries, D hidden size.
"""

from __future__ import annotations

from torch import Tensor

from msdetr.modeling.decoder import DeformableDecoder
from msdetr.modeling.heads import PredictionHeads
from msdetr.modeling.outputs import StreamPredictions
from msdetr.modeling.queries import QueryInit

DAC = "dac"


def self_attention_flags(num_layers: int, first_layer_self_attention: bool) -> list[bool]:
    """Per layer, whether the branch runs its self-attention block."""
    return [first_layer_self_attention] + [False] * (num_layers - 1)


def divide_and_conquer_branch(decoder: DeformableDecoder, heads: PredictionHeads, init: QueryInit,
                              memory: Tensor, spatial_shapes: list[tuple[int, int]], valid_ratios: Tensor,
                              padding_mask: Tensor, first_layer_self_attention: bool) -> StreamPredictions:
    """The branch's predictions: logits (L, B, Q, C), boxes (L, B, Q, 4), from the primary queries
    `init` ((B, Q, D) content / position, (B, Q, 4 or 2) references) and the encoder memory."""
    flags = self_attention_flags(len(decoder.layers), first_layer_self_attention)
    out = decoder(init.tgt, init.query_pos, init.reference_points, memory, spatial_shapes, valid_ratios,
                  padding_mask, box_heads=list(heads.box_heads), tap=False, self_attention=flags)
    return heads.predict(out)
