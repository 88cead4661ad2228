"""Decoder branches: training-only reruns of the decoder on the primary queries with some of
its layers' blocks substituted, returned as a stream of their own (shared heads).

A branch is an `nn.Module` with a `name` (its stream) and
`branch(decoder, heads, queries, memory) -> StreamPredictions`; it may own parameters
(route-specific FFNs, instruction tokens, ...) which then live under the detector's
`branches.<i>`. `substitutes(num_layers)` is its per-layer map block name -> replacement
(`decoder_layers.BlockSubstitutes`; None skips the block). Nothing of a branch runs at inference.

DAC-DETR's divide-and-conquer branch (`SkipSelfAttention`): the primary queries (content,
position, initial reference boxes) go through the same layers again with self-attention skipped,
refining their own references, predicted by the same heads; no parameters. As released, the
first layer may keep its self-attention (`keep_first`); with MS-DETR's layers (cross-attention
first) that keeps the first layer's self-attention block.

Shapes: L layers, B batch, Q primary queries, D hidden size.
"""

from __future__ import annotations

from torch import nn

from msdetr.modeling.decoder import DecoderMemory, DecoderQueries, DeformableDecoder
from msdetr.modeling.decoder_layers import BlockSubstitutes
from msdetr.modeling.heads import PredictionHeads
from msdetr.modeling.outputs import StreamPredictions


class DecoderBranch(nn.Module):
    """Base of a branch: reruns the decoder with `substitutes`, predicts with the shared heads."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def substitutes(self, num_layers: int) -> list[BlockSubstitutes | None]:
        raise NotImplementedError

    def forward(self, decoder: DeformableDecoder, heads: PredictionHeads, queries: DecoderQueries,
                memory: DecoderMemory) -> StreamPredictions:
        """queries: the primary queries (no mask); returns logits (L, B, Q, C), boxes (L, B, Q, 4)."""
        out = decoder(queries, memory, list(heads.box_heads), tap=False,
                      substitutes=self.substitutes(len(decoder.layers)))
        return heads.predict(out)


class SkipSelfAttention(DecoderBranch):
    """DAC-DETR: every layer's self-attention skipped (but the first layer's with `keep_first`)."""

    def __init__(self, name: str, num_layers: int, keep_first: bool = True):
        super().__init__(name)
        self.keep_first = keep_first

    def substitutes(self, num_layers: int) -> list[BlockSubstitutes | None]:
        skip = {"self": None}
        return [None if self.keep_first else skip] + [skip] * (num_layers - 1)
