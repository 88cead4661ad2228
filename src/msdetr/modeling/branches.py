"""Decoder branches: training-only reruns of the decoder on the primary queries with some of
its layers' blocks substituted, returned as a stream of their own (shared heads).

A branch is an `nn.Module` with a `name` (its stream) and
`branch(decoder, heads, queries, memory, context) -> StreamPredictions | BranchOutput`; it may own
parameters (route-specific FFNs, instruction tokens, ...) which then live under the detector's
`branches.<i>`. `substitutes(num_layers)` is its per-layer map block name -> replacement
(`decoder_layers.BlockSubstitutes`; None skips the block). `context` (`BranchContext`) gives it the
primary's query source (to select queries of its own, e.g. from its own proposal heads) and the
extra query groups of this pass (to rerun, e.g., the denoising queries on the branch). A branch
returning a `BranchOutput` adds several streams and extra named proposal sets
(`DetectorOutput.encoders`). Nothing of a branch runs at inference but `at_inference`, a hook on
the primary's (one-to-one) predictions when no training stream is computed (identity by default);
`init_from_heads` lets a branch start heads of its own as copies of the detector's.

DAC-DETR's divide-and-conquer branch (`SkipSelfAttention`): the primary queries (content,
position, initial reference boxes) go through the same layers again with self-attention skipped,
refining their own references, predicted by the same heads; no parameters. As released, the
first layer may keep its self-attention (`keep_first`); with MS-DETR's layers (cross-attention
first) that keeps the first layer's self-attention block.

Shapes: L layers, B batch, Q primary queries, D hidden size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from msdetr.modeling.decoder import DecoderMemory, DecoderQueries, DeformableDecoder
from msdetr.modeling.decoder_layers import BlockSubstitutes
from msdetr.modeling.heads import PredictionHeads
from msdetr.modeling.outputs import EncoderPredictions, StreamPredictions


@dataclass
class BranchContext:
    """What a branch may use beyond the primary queries and the memory.

    source: the detector's primary query module (e.g. `queries.TwoStageQueries`, to select a
        branch's own proposals with its own heads); groups: the extra query groups of this
        pass (`contracts.QueryGroup`: hybrid, group, denoising, ...).
    """

    source: nn.Module | None = None
    groups: list[Any] = field(default_factory=list)


@dataclass
class BranchOutput:
    """A branch's several streams (name -> (L, B, Q', ...) predictions) and extra named proposal
    sets (name -> (B, S, ...) proposals, `DetectorOutput.encoders`)."""

    streams: dict[str, StreamPredictions] = field(default_factory=dict)
    encoders: dict[str, EncoderPredictions] = field(default_factory=dict)


class DecoderBranch(nn.Module):
    """Base of a branch: reruns the decoder with `substitutes`, predicts with the shared heads."""

    def __init__(self, name: str):
        super().__init__()
        self.name = name

    def substitutes(self, num_layers: int) -> list[BlockSubstitutes | None]:
        raise NotImplementedError

    def init_from_heads(self, heads: PredictionHeads) -> None:
        """Called once the detector's heads exist (they are built after the branches): a branch
        may start its own heads from theirs. Nothing by default."""

    def at_inference(self, predictions: StreamPredictions) -> StreamPredictions:
        """The primary's predictions (L, B, Q, ...) at inference (no training stream computed)."""
        return predictions

    def forward(self, decoder: DeformableDecoder, heads: PredictionHeads, queries: DecoderQueries,
                memory: DecoderMemory, context: BranchContext | None = None) -> StreamPredictions | BranchOutput:
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
