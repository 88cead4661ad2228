"""Mr. DETR's decoder branch: its parameters, its routes while training, its score fusion at inference.

While training (the detector's branches run after its primary pass) the routes rerun the decoder
over the same memory. The instructive route's queries are the top-Q proposals of the second
encoder head (same memory, anchors, `enc_output(_norm)` and `pos_trans(_norm)` as the primary's,
through the detector's query source `BranchContext.source`; boxes detached), with the primary's
learned content queries (mixed selection); the sep route reruns exactly the primary's queries.
With denoising (DINO), the primary's denoising queries (the same noised boxes and labels, from
`BranchContext.groups`) follow each route's queries under the primary's self-attention mask (the
instruction tokens are hidden from them), as the release's DINO / Align variants; their predictions
are the streams `mr_instructive_dn` / `mr_sep_dn`. At inference (`at_inference`) the release's
cross-layer score fusion of the primary's class scores, if `model.mr_detr.score_fusion`.

Shapes: L layers, B batch, Q queries, S encoder tokens, D hidden size, C classes.
"""

from __future__ import annotations

from msdetr.errors import MsdetrError
from msdetr.methods.contracts import DENOISING
from msdetr.methods.mr_detr.config import MrDetrModelConfig
from msdetr.methods.mr_detr.fusion import fuse_layer_scores
from msdetr.methods.mr_detr.parameters import MrDetrParameters
from msdetr.methods.mr_detr.routes import run_route
from msdetr.methods.mr_detr.streams import DENOISING_STREAMS, ENCODER_O2M, INSTRUCTIVE, SEP
from msdetr.modeling.branches import BranchContext, BranchOutput, DecoderBranch
from msdetr.modeling.decoder import DecoderMemory, DecoderQueries, DeformableDecoder
from msdetr.modeling.heads import PredictionHeads, make_box_head, make_class_head
from msdetr.modeling.outputs import StreamPredictions
from msdetr.modeling.queries import QueryInit, TwoStageQueries
from msdetr.modeling.query_groups import assemble_queries


class MrDetrBranch(DecoderBranch):
    """cfg: the `model.mr_detr` section; its parameters under `params` (`parameters.MrDetrParameters`;
    the second encoder head starts as a copy of the detector's layer-0 heads, `init_from_heads`)."""

    def __init__(self, cfg: MrDetrModelConfig, hidden_dim: int, dim_feedforward: int, num_layers: int,
                 num_classes: int):
        super().__init__(INSTRUCTIVE)
        self.cfg = cfg
        self.params = MrDetrParameters(cfg, hidden_dim, dim_feedforward, num_layers,
                                       make_class_head(hidden_dim, num_classes), make_box_head(hidden_dim))

    def init_from_heads(self, heads: PredictionHeads) -> None:
        """The release's second encoder head: the layer-0 heads' values, the box size bias reset."""
        self.params.copy_encoder_heads(heads.class_heads[0], heads.box_heads[0])

    def at_inference(self, predictions: StreamPredictions) -> StreamPredictions:
        """The primary's predictions (logits (L, B, Q, C)) with the release's score fusion if enabled."""
        if not self.cfg.score_fusion:
            return predictions
        return StreamPredictions(logits=fuse_layer_scores(predictions.logits), boxes=predictions.boxes,
                                 masks=predictions.masks)

    def forward(self, decoder: DeformableDecoder, heads: PredictionHeads, queries: DecoderQueries,
                memory: DecoderMemory, context: BranchContext | None = None) -> BranchOutput:
        """The routes' streams (`mr_instructive`, `mr_sep`: logits (L, B, Q, C), boxes (L, B, Q, 4); with a
        denoising group also `mr_instructive_dn`, `mr_sep_dn`: (L, B, E, ...)) and the second encoder
        head's proposals (`mr_encoder`: (B, S, C), (B, S, 4)). queries: the primary's (B, Q, ...)."""
        context = context or BranchContext()
        source = context.source if isinstance(context.source, TwoStageQueries) else None
        if self.cfg.instructive_route and source is None:
            raise MsdetrError("model.mr_detr.instructive_route: needs model.two_stage: true (its queries are "
                              "proposals of a second encoder head)")
        out = BranchOutput()
        denoising = [g for g in context.groups if g.name == DENOISING]
        common = (memory.memory, memory.spatial_shapes, memory.valid_ratios, memory.padding_mask)
        route_queries = {}
        if self.cfg.instructive_route:
            own = source(memory.memory, memory.padding_mask, memory.spatial_shapes, self.params.encoder_class_head,
                         self.params.encoder_box_head)
            route_queries[INSTRUCTIVE] = ("instructive", own)
            out.encoders[ENCODER_O2M] = own.encoder
        if self.cfg.sep_route:
            route_queries[SEP] = ("sep", QueryInit(queries.tgt, queries.query_pos, queries.reference_points))
        for stream, (route, route_init) in route_queries.items():
            q = assemble_queries(route_init, denoising, stream)
            predicted = run_route(route, decoder, heads, self.params, q.tgt, q.query_pos, q.reference_points,
                                  *common, attn_mask=q.attn_mask, num_primary=q.slices[stream].stop)
            out.streams[stream] = _queries(predicted, q.slices[stream])
            if denoising:
                out.streams[DENOISING_STREAMS[stream]] = _queries(predicted, q.slices[DENOISING])
        return out


def _queries(out: StreamPredictions, part: slice) -> StreamPredictions:
    """The predictions of queries `part` (dim 2 of (L, B, Q, ...)); all of them when it covers all."""
    if part.start == 0 and part.stop == out.logits.shape[2]:
        return out
    return StreamPredictions(logits=out.logits[:, :, part], boxes=out.boxes[:, :, part])
